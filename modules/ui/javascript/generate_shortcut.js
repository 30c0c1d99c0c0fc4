// Ctrl+Enter (Cmd+Enter on a Mac) in a prompt box presses that tab's Generate button, as in A1111.
(() => {
  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.key !== "Enter") return;
    const box = event.target;
    const prompt = box instanceof HTMLTextAreaElement ? box.closest("[id$='_prompt']") : null;
    if (!prompt) return;
    const tab = prompt.id.split("_")[0];
    const button = document.getElementById(`${tab}_generate`);
    if (!button) return;
    event.preventDefault();
    button.click();
  });
})();
