// netmon status board: a little progressive help for the 90-day bars (the pages work without it).
// Opening a day closes the other open day; Escape closes it and gives the focus back to the day.
document.addEventListener("toggle", function (event) {
  var day = event.target;
  if (!day.classList || !day.classList.contains("day") || !day.open) return;
  document.querySelectorAll("details.day[open]").forEach(function (other) {
    if (other !== day) other.open = false;
  });
}, true);
document.addEventListener("keydown", function (event) {
  if (event.key !== "Escape") return;
  var open = document.querySelector("details.day[open]");
  if (!open) return;
  open.open = false;
  open.querySelector("summary").focus();
});
