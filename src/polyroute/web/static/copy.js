// Copy buttons: <button data-copy="input-id"> copies that input's value to the clipboard.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const input = document.getElementById(button.dataset.copy);
  const status = document.getElementById("copy-status");
  try {
    await navigator.clipboard.writeText(input.value);
    if (status) status.textContent = "Copied to the clipboard.";
  } catch (error) {
    input.select();
    if (status) status.textContent = "Select the text and copy it (the clipboard is not available).";
  }
});
