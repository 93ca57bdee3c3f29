// recsmith console, campaign page: live traffic from the server's metrics. The section
// <section id="traffic" data-traffic-src=URL data-traffic-every=SECONDS data-traffic-keep=N> is sampled every
// SECONDS (URL answers {at, requests, buckets: [{le, count}, ...]}, cumulative); the last N intervals between
// samples are drawn: requests per second, and p50 / p99 latency estimated from the histogram's bucket deltas with
// Prometheus' histogram_quantile interpolation. No inline scripts (the CSP forbids them).
(function () {
  "use strict";

  // Prometheus' bucketQuantile: buckets sorted by upper bound (the last +Inf), cumulative counts.
  function quantile(q, buckets) {
    if (!buckets || buckets.length < 2) return null;
    var observations = buckets[buckets.length - 1].count;
    if (!(observations > 0)) return null;
    var rank = q * observations;
    var b = 0;
    while (b < buckets.length - 1 && buckets[b].count < rank) b++;
    if (b === buckets.length - 1) return buckets[buckets.length - 2].le;   // in the +Inf bucket: the last bound
    if (b === 0 && buckets[0].le <= 0) return buckets[0].le;
    var start = 0, end = buckets[b].le, count = buckets[b].count;
    if (b > 0) {
      start = buckets[b - 1].le;
      count -= buckets[b - 1].count;
      rank -= buckets[b - 1].count;
    }
    return count > 0 ? start + (end - start) * (rank / count) : start;
  }

  function bound(le) { return le === "+Inf" ? Infinity : Number(le); }

  // The histogram of what happened between two samples; null when a counter went down (a worker restarted).
  function delta(before, after) {
    if (!before || before.buckets.length !== after.buckets.length) return null;
    var out = [];
    for (var i = 0; i < after.buckets.length; i++) {
      var n = after.buckets[i].count - before.buckets[i].count;
      if (n < 0) return null;
      out.push({ le: bound(after.buckets[i].le), count: n });
    }
    return out;
  }

  // One point per pair of consecutive samples: {at, label, rps, p50, p99} (latencies in ms, null without requests).
  function point(before, after) {
    var seconds = after.at - before.at;
    var requests = after.requests - before.requests;
    var label = new Date(after.at * 1000).toISOString().slice(11, 19);
    if (!(seconds > 0) || requests < 0) return { at: after.at, label: label, rps: null, p50: null, p99: null };
    var hist = delta(before, after);
    var ms = function (q) { var v = hist ? quantile(q, hist) : null; return v === null ? null : v * 1000; };
    return { at: after.at, label: label, rps: requests / seconds, p50: ms(0.5), p99: ms(0.99) };
  }

  function text(value, unit) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    var digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
    return value.toFixed(digits) + (unit || "");
  }

  // A line chart over a fixed window: x is seconds before the newest sample (-span .. 0), so the points move left.
  function lineChart(canvas, datasets, axis, span) {
    return new Chart(canvas, {
      type: "line",
      data: { datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, spanGaps: false, parsing: false,
        interaction: { mode: "index", intersect: false },
        plugins: { tooltip: { callbacks: { title: function (items) {
          return items.length ? items[0].raw.label + " UTC" : ""; } } } },
        scales: {
          y: { beginAtZero: true, title: { display: true, text: axis } },
          x: { type: "linear", min: -span, max: 0,
               ticks: { maxTicksLimit: 7, maxRotation: 0, callback: function (v) { return v === 0 ? "now" : v + " s"; } } },
        },
      },
    });
  }

  function start(section) {
    if (!window.Chart) return;
    var src = section.getAttribute("data-traffic-src");
    var every = parseFloat(section.getAttribute("data-traffic-every") || "2");
    var keep = parseInt(section.getAttribute("data-traffic-keep") || "60", 10);
    var samples = [], points = [];
    var span = keep * every;
    var rps = lineChart(section.querySelector("#rps-chart"),
      [{ label: "Requests / s", data: [], borderColor: "#0b5cad", backgroundColor: "#0b5cad", pointRadius: 1.5 }],
      "requests / s", span);
    var latency = lineChart(section.querySelector("#latency-chart"), [
      { label: "p50 (ms)", data: [], borderColor: "#1d7a3a", backgroundColor: "#1d7a3a", pointRadius: 1.5 },
      { label: "p99 (ms)", data: [], borderColor: "#b3261e", backgroundColor: "#b3261e", pointRadius: 1.5 },
    ], "latency (ms)", span);

    function show(name, value) {
      var el = section.querySelector('[data-now="' + name + '"]');
      if (el) el.textContent = value;
    }

    function redraw() {
      var newest = points.length ? points[points.length - 1].at : 0;
      var series = function (key) {
        return points.map(function (p) { return { x: Math.round((p.at - newest) * 10) / 10, y: p[key], label: p.label }; });
      };
      rps.data.datasets[0].data = series("rps");
      latency.data.datasets[0].data = series("p50");
      latency.data.datasets[1].data = series("p99");
      rps.update();
      latency.update();
      var last = points[points.length - 1];
      if (last) {
        show("rps", text(last.rps));
        show("p50", last.p50 === null ? "–" : text(last.p50, " ms"));
        show("p99", last.p99 === null ? "–" : text(last.p99, " ms"));
      }
      show("total", Math.round(samples[samples.length - 1].requests).toLocaleString("en"));
      section.setAttribute("data-points", String(points.length));
    }

    function sample() {
      if (!document.body.contains(section)) { clearInterval(timer); rps.destroy(); latency.destroy(); return; }
      if (document.hidden) return;
      fetch(src, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (now) {
          if (!now) return;
          var before = samples[samples.length - 1];
          samples.push(now);
          if (samples.length > keep + 1) samples.shift();
          if (before) {
            points.push(point(before, now));
            if (points.length > keep) points.shift();
          }
          redraw();
        })
        .catch(function () {});
    }

    var timer = setInterval(sample, every * 1000);
    sample();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("traffic");
    if (section) start(section);
  });
  window.recsmithCampaigns = { quantile: quantile, delta: delta, point: point };
})();
