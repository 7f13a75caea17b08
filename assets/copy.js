// The Copy buttons of a counter's page: each copies the text area its
// data-copy names. The Clipboard API needs a secure context (https, or
// localhost); elsewhere the older execCommand copies the selected text.
// A file of its own, since the Content-Security-Policy allows no inline
// script.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch {
    field.select();
    copied = document.execCommand("copy");
  }
  button.textContent = copied ? "Copied" : "Select and copy";
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
});
