// recsmith console: htmx settings and the charts. No inline scripts anywhere (the pages' CSP forbids them):
// a chart is a <canvas data-chart='{"type": ..., "data": ..., "options": ...}'> (Chart.js's own config), drawn
// when the page loads and whenever htmx swaps new content in. A canvas with data-chart-src="URL" and
// data-chart-every="SECONDS" is redrawn from that URL's JSON ({"labels": [...], "datasets": [...]}).
(function () {
  "use strict";
  if (window.htmx) {
    htmx.config.allowEval = false;           // hx-on and js: values would need 'unsafe-eval'
    htmx.config.includeIndicatorStyles = false;
    htmx.config.responseHandling = [         // errors are fragments too: show them where the answer would go
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "[45]..", swap: true, error: true },
      { code: "...", swap: false },
    ];
  }
  var charts = new WeakMap();

  function draw(canvas) {
    if (!window.Chart || charts.has(canvas)) return;
    var config;
    try { config = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    var chart = new Chart(canvas, config);
    charts.set(canvas, chart);
    var src = canvas.getAttribute("data-chart-src");
    var every = parseFloat(canvas.getAttribute("data-chart-every") || "0");
    if (src && every > 0) {
      var timer = setInterval(function () {
        if (!document.body.contains(canvas)) { clearInterval(timer); chart.destroy(); return; }
        fetch(src, { credentials: "same-origin", headers: { "Accept": "application/json" } })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (d) {
            if (!d) return;
            chart.data.labels = d.labels;
            d.datasets.forEach(function (ds, i) {
              if (chart.data.datasets[i]) { chart.data.datasets[i].data = ds.data; } else { chart.data.datasets.push(ds); }
            });
            chart.update();
          })
          .catch(function () {});
      }, every * 1000);
    }
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { drawAll(event.target); });
  window.recsmithConsole = { drawAll: drawAll, charts: charts };
})();
