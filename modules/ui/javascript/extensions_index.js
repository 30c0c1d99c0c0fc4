// Extensions → Available: each extension's Install button in the index table puts its URL into the
// "URL of the extension to install" box and presses the Install button beside it (the server installs it).
function installExtensionFromIndex(button, url) {
  const box = gradioApp().querySelector("#extension_to_install textarea, #extension_to_install input");
  box.value = url;
  box.dispatchEvent(new Event("input", {bubbles: true}));
  button.disabled = true;
  button.textContent = "Installing…";
  gradioApp().querySelector("#install_extension_button").click();
}
