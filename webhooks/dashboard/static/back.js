// The error page's "Back" link returns to the previous page, as the browser's own button
// would (without script it goes home).
(function () {
  const back = document.getElementById("back");
  if (!back) return;
  back.addEventListener("click", (clicked) => {
    if (history.length < 2) return;
    clicked.preventDefault();
    history.back();
  });
})();
