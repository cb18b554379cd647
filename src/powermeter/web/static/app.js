/* powermeter dashboard: copy buttons and charts. No inline scripts (the CSP forbids them). */
(function () {
  "use strict";

  function copy(button) {
    var target = document.querySelector(button.getAttribute("data-copy"));
    if (!target) return;
    var status = document.getElementById(button.getAttribute("aria-describedby") || "");
    var text = target.value !== undefined ? target.value : target.textContent;
    var done = function () { if (status) status.textContent = "Copied to the clipboard."; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { target.select(); document.execCommand("copy"); done(); });
    } else {
      target.focus(); target.select();
      try { document.execCommand("copy"); done(); } catch (e) { if (status) status.textContent = "Press Ctrl+C to copy."; }
    }
  }

  document.addEventListener("click", function (ev) {
    var b = ev.target.closest && ev.target.closest("[data-copy]");
    if (b) { ev.preventDefault(); copy(b); }
  });

  function drawCharts(root) {
    if (!window.Chartist) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.getAttribute("data-drawn")) return;
      var src = document.getElementById(el.getAttribute("data-chart"));
      if (!src) return;
      var spec = JSON.parse(src.textContent);
      var opts = {
        fullWidth: true, chartPadding: { right: 24, left: 8 },
        axisY: { onlyInteger: !!spec.integer, labelInterpolationFnc: function (v) { return Number(v).toLocaleString(); } },
        axisX: { labelInterpolationFnc: function (v, i) {
          var every = Math.ceil(spec.labels.length / 10); return i % every === 0 ? v : null; } }
      };
      var data = { labels: spec.labels, series: spec.series };
      if (spec.type === "bar") { new Chartist.BarChart(el, data, opts); }
      else { opts.showArea = true; opts.low = 0; new Chartist.LineChart(el, data, opts); }
      el.setAttribute("data-drawn", "1");
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (ev) { drawCharts(ev.target); });
})();
