// A button marked data-print prints the page (inline handlers are refused by the CSP).
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
