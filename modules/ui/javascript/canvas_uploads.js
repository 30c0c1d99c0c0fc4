// The sketch and inpaint canvases decode a chosen or dropped file in the browser and quietly ignore one that is
// not an image. Try each such file here; one that can't be decoded is named to the server through the hidden
// #canvas_upload_refusals box, which answers "not an image: <name>" as every other upload check does.
(() => {
  const EDITORS = "#img2img_sketch, #img2maskimg, #inpaint_sketch";

  function report(name) {
    const box = gradioApp().querySelector("#canvas_upload_refusals textarea, #canvas_upload_refusals input");
    box.value = `${name}\n${Date.now()}`;  // a change even when the same name comes again
    box.dispatchEvent(new Event("input", {bubbles: true}));
  }

  async function check(files) {
    for (const file of files) {
      try {
        (await createImageBitmap(file)).close();
      } catch (error) {
        report(file.name);
      }
    }
  }

  document.addEventListener("change", (event) => {
    const input = event.target;
    if (input instanceof HTMLInputElement && input.type === "file" && input.closest(EDITORS)) {
      check(Array.from(input.files || []));
    }
  }, true);
  document.addEventListener("drop", (event) => {
    if (event.target instanceof Element && event.target.closest(EDITORS)) {
      check(Array.from(event.dataTransfer ? event.dataTransfer.files : []));
    }
  }, true);
})();
