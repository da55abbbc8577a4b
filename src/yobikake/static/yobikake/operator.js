// The operator's keyboard: an outcome's key submits it (outside the text fields);
// m goes to the note; Escape leaves a text field so that the keys work again.
document.addEventListener("keydown", (event) => {
  const typing = event.target.matches("textarea, input");
  if (event.key === "Escape" && typing) {
    event.target.blur();
    return;
  }
  if (typing || event.ctrlKey || event.altKey || event.metaKey) return;
  if (event.key === "m" && document.getElementById("note")) {
    event.preventDefault();
    document.getElementById("note").focus();
    return;
  }
  const button = document.querySelector(`#outcome-form button[data-key="${CSS.escape(event.key)}"]`);
  if (button) {
    event.preventDefault();
    button.click();
  }
});
