// Progressive enhancement only: hide follow-up questions until their condition holds.
// Without JavaScript every follow-up is shown, with a sentence saying when to answer it.
(function () {
  var form = document.querySelector("form");
  if (!form) return;
  var followUps = form.querySelectorAll("[data-show-if]");
  function valueOf(name) {
    var checked = form.querySelector('input[name="' + name + '"]:checked');
    return checked ? checked.value : null;
  }
  function update() {
    followUps.forEach(function (el) {
      var wanted = el.getAttribute("data-values").split(",");
      var show = wanted.indexOf(valueOf(el.getAttribute("data-show-if"))) !== -1;
      el.hidden = !show;
      var cond = el.querySelector(".cond");
      if (cond) cond.hidden = true;
    });
  }
  form.addEventListener("change", update);
  update();
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
