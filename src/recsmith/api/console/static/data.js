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
  // a file over the server's limit (RECSMITH_CONSOLE_UPLOAD_BYTES) is refused here, before it is sent
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form.upload")) return;
    var input = form.querySelector("input[type=file]");
    var max = parseInt(form.getAttribute("data-max-bytes") || "0", 10);
    var file = input && input.files && input.files[0];
    if (!file || !max || file.size <= max) return;
    event.preventDefault();
    var alert = document.createElement("div");
    alert.className = "error";
    alert.setAttribute("role", "alert");
    var name = document.createElement("strong");
    name.textContent = "file: ";
    alert.appendChild(name);
    alert.appendChild(document.createTextNode(file.name + " is " + file.size + " bytes; the largest file this " +
      "server takes is " + max + " bytes (RECSMITH_CONSOLE_UPLOAD_BYTES)"));
    var result = document.getElementById("upload-result");
    result.replaceChildren(alert);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var progress = bar();
    if (progress && event.target.closest && event.target.closest("form.upload")) { progress.hidden = true; }
  });
})();
