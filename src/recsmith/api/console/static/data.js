// The Data page: the upload's own progress (bytes sent) while htmx posts the file; the import's progress after
// that comes from the server (the status fragment polls itself). No inline scripts: the CSP forbids them.
(function () {
  "use strict";
  function bar() { return document.getElementById("upload-bytes"); }
  document.addEventListener("htmx:xhr:progress", function (event) {
    var progress = bar();
    if (!progress || !event.target.closest || !event.target.closest("form.upload")) return;
    var detail = event.detail || {};
    if (detail.lengthComputable && detail.total > 0) {
      progress.hidden = false;
      progress.max = detail.total;
      progress.value = detail.loaded;
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var progress = bar();
    if (progress && event.target.closest && event.target.closest("form.upload")) { progress.hidden = true; }
  });
})();
