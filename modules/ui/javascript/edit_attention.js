// Ctrl+Up / Ctrl+Down in a prompt box: raise or lower the emphasis weight of the selection
// (or of the word at the cursor), writing A1111's `(text:1.1)` syntax.
(() => {
  const STEP = 0.1;
  const isPromptBox = (el) => el instanceof HTMLTextAreaElement && !!el.closest("[id$='_prompt']");

  // The span to change: the selection, an enclosing "(text:weight)", or the word at the cursor.
  function target(text, start, end) {
    const open = text.lastIndexOf("(", start - 1);
    const close = text.indexOf(")", end);
    if (open !== -1 && close !== -1) {
      const inner = text.slice(open + 1, close);
      const match = inner.match(/^([^()]*):(-?\d*\.?\d+)$/);
      if (match && !inner.slice(0, start - open - 1).includes(")")) {
        return { from: open, to: close + 1, body: match[1], weight: parseFloat(match[2]) };
      }
    }
    if (start === end) {
      const before = text.slice(0, start).search(/[^\s,()[\]]*$/);
      const afterMatch = text.slice(end).match(/^[^\s,()[\]]*/);
      start = before;
      end = end + (afterMatch ? afterMatch[0].length : 0);
    }
    if (start === end) return null;
    return { from: start, to: end, body: text.slice(start, end), weight: 1.0 };
  }

  document.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || !["ArrowUp", "ArrowDown"].includes(event.key)) return;
    const box = event.target;
    if (!isPromptBox(box)) return;
    const span = target(box.value, box.selectionStart, box.selectionEnd);
    if (!span) return;
    event.preventDefault();
    const weight = Math.round((span.weight + (event.key === "ArrowUp" ? STEP : -STEP)) * 100) / 100;
    const replacement = weight === 1 ? span.body : `(${span.body}:${weight})`;
    box.value = box.value.slice(0, span.from) + replacement + box.value.slice(span.to);
    const bodyStart = span.from + (weight === 1 ? 0 : 1);
    box.setSelectionRange(bodyStart, bodyStart + span.body.length);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });
})();
