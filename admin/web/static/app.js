// mailstead admin: copy buttons and confirmations. No inline script anywhere (the CSP forbids it).
"use strict";
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("button");
  if (!b) return;
  if (b.dataset.copy !== undefined) {
    var text = b.dataset.copy, old = b.textContent;
    var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = old; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
    } else { fallback(text); done(); }
  }
  if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) ev.preventDefault();
});
function fallback(text) {
  var t = document.createElement("textarea");
  t.value = text; t.setAttribute("readonly", ""); t.style.position = "absolute"; t.style.left = "-9999px";
  document.body.appendChild(t); t.select();
  try { document.execCommand("copy"); } catch (e) {}
  document.body.removeChild(t);
}
