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
    if (b) { ev.preventDefault(); copy(b); return; }
    var p = ev.target.closest && ev.target.closest("[data-preset]");
    if (p) {  // a scope preset ticks exactly its scopes
      var want = p.getAttribute("data-preset").split(" ");
      p.form.querySelectorAll("input[name=scopes]").forEach(function (box) { box.checked = want.indexOf(box.value) >= 0; });
    }
  });

  // Charts: short labels, as many as fit the chart's width (about one per 48 px), compact y labels.
  var fmt = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 2, notation: "compact" });
  function drawCharts(root) {
    if (!window.Chartist) return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el.getAttribute("data-drawn")) return;
      var src = document.getElementById(el.getAttribute("data-chart"));
      if (!src) return;
      var spec = JSON.parse(src.textContent), labels = spec.short || spec.labels;
      var fit = Math.max(2, Math.floor((el.clientWidth || 300) / 48));
      var every = Math.ceil(labels.length / fit);
      var opts = {
        fullWidth: true, chartPadding: { right: 12, left: 0 },
        axisY: { offset: 56, scaleMinSpace: 28, onlyInteger: !!spec.integer, labelInterpolationFnc: function (v) { return fmt.format(v); } },
        axisX: { labelInterpolationFnc: function (v, i) { return i % every === 0 ? v : null; } }
      };
      var data = { labels: labels, series: spec.series.map(function (d, i) {
        return { name: (spec.names || [])[i], className: (spec.classes || [])[i], data: d }; }) };
      if (spec.type === "bar") { new Chartist.BarChart(el, data, opts); }
      else { opts.showArea = true; opts.low = 0; new Chartist.LineChart(el, data, opts); }
      el.setAttribute("data-drawn", "1");
    });
  }


  // Devices: the catalog picker fills the name, watts (and hours for always-on devices); the custom
  // rate fields show only for a custom rate; a form with data-confirm asks first.
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (el.hasAttribute && el.hasAttribute("data-catalog")) {
      var opt = el.options[el.selectedIndex], f = el.form.elements;
      if (opt && opt.value) {
        f.watts.value = opt.getAttribute("data-watts");
        f.name.value = opt.getAttribute("data-name");
        if (opt.getAttribute("data-hours")) f.hours_per_day.value = opt.getAttribute("data-hours");
      }
    }
    if (el.hasAttribute && el.hasAttribute("data-pricing")) pricing(el);
  });
  function pricing(sel) {
    var box = sel.form.querySelector("[data-custom-rate]");
    if (box) box.hidden = sel.value !== "custom";
  }
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) ev.preventDefault();
  }, true);

  // Phones: the main navigation folds into a Menu button (without JavaScript it stays open).
  function menu() {
    var nav = document.getElementById("main-nav"), btn = document.querySelector("[data-menu]");
    if (!nav || !btn) return;
    btn.hidden = false; nav.setAttribute("data-collapsed", "");
    btn.addEventListener("click", function () {
      var open = nav.hasAttribute("data-collapsed");
      nav.toggleAttribute("data-collapsed", !open); btn.setAttribute("aria-expanded", String(open));
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    menu();
    drawCharts(document);
    document.querySelectorAll("[data-pricing]").forEach(pricing);
  });
  document.addEventListener("htmx:afterSettle", function (ev) { drawCharts(ev.target); });
})();
