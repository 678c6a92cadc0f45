// The dashboard's one script: ask before the buttons whose effect is wide
// or final (forms carrying data-confirm). Everything works without it.
document.addEventListener("submit", function (e) {
  var ask = e.target.getAttribute("data-confirm");
  if (ask && !window.confirm(ask)) {
    e.preventDefault();
  }
});
