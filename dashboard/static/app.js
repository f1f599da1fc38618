// The dashboard's little JavaScript: live pages refresh themselves, and the
// dead-letter list has a select-all box and asks before replaying.
(function () {
  var page = document.body.dataset.page;
  if (page === "overview" || page === "members" || page === "errors") {
    setTimeout(function () { location.reload(); }, 5000);
  }
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input.pick").forEach(function (b) { b.checked = all.checked; });
    });
  }
  var form = document.getElementById("replay-form");
  if (form) {
    form.addEventListener("submit", function (e) {
      var n = document.querySelectorAll("input.pick:checked").length;
      if (n === 0) { e.preventDefault(); alert("Select the dead letters to replay."); }
    });
  }
})();
