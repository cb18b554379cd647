/* powermeter dashboard: the calculator page (loaded by that page only). */
(function () {
  "use strict";

  // The calculator: the form's fields as the JSON body of the public POST /calc/api/cost; errors
  // and the rate (with its source, and why flat pricing was used) in sentences; money to 2 decimals.
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }); }
  var FIELDS = { "device.watts": "Power (W)", "device.hours_per_day": "Hours a day", "device.schedule": "Schedule",
    "rateConfig.flat_rate": "The flat rate", "regionCode": "Region" };
  function sentence(j, region) {
    if (j.error === "region_not_found" || j.error === "tariff_not_found")
      return "No tariff for " + (region || "that region") + " — try US-CA, DE or GB.";
    if (j.error === "rate_limited") return "Too many calculations in a minute: wait a moment and try again.";
    var m = String(j.error || "The calculation failed"), f = j.field && FIELDS[j.field];
    if (f) m = f + " " + m.slice(m.indexOf(":") + 1).trim();
    return m.charAt(0).toUpperCase() + m.slice(1).replace(/\.?$/, ".");
  }
  function money(v, cur) { return Number(v).toFixed(2) + " " + cur; }
  function windows(text) {
    return text.split(",").filter(function (p) { return p.trim(); }).map(function (p) {
      var h = p.split("-").map(Number); return [h[0], h[1] <= h[0] ? h[1] + 24 : h[1]]; });
  }
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute || !form.hasAttribute("data-calc") || (ev.submitter && ev.submitter.hasAttribute("data-add-device"))) return;
    ev.preventDefault();
    var f = form.elements, out = document.getElementById("calc-result");
    var m = /\(([^()]+)\)\s*$/.exec(f.region_code.value), region = (m ? m[1] : f.region_code.value).trim().toUpperCase();
    var device = { watts: Number(f.watts.value), hours_per_day: Number(f.hours_per_day.value) };
    if (f.schedule.value.trim()) device.schedule = windows(f.schedule.value);
    var body = { device: device, breakdown: true };
    if (f.rate_kind.value === "region") body.regionCode = region;
    else body.rateConfig = { flat_rate: Number(f.flat_rate.value) };
    out.textContent = "Calculating…";
    fetch(form.getAttribute("action"), { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), credentials: "omit" })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (res) {
        var j = res.j, b = j.breakdown || {};
        if (!res.ok) { out.innerHTML = '<p class="error" role="alert">' + esc(sentence(j, region)) + "</p>"; return; }
        var cur = esc(j.currency || ""), rate = j.mode === "tou" ? b.average_tou_rate : b.flat_rate;
        out.innerHTML = '<dl class="kv"><dt>Energy</dt><dd>' + esc(j.kwh_per_day) + " kWh/day</dd>" +
          "<dt>Daily</dt><dd>" + money(j.daily_cost, cur) + "</dd><dt>Monthly</dt><dd>" + money(j.monthly_cost, cur) +
          "</dd><dt>Annual</dt><dd>" + money(j.annual_cost, cur) + "</dd><dt>Rate</dt><dd>" +
          (rate == null ? "–" : esc(rate) + " " + cur + "/kWh") + (j.mode === "tou" ? " on average (time of use)" : " (flat)") +
          (b.tariff_id ? ", tariff " + esc(b.tariff_id) : "") + '</dd><dt>Source</dt><dd id="calc-source">' +
          (b.region_code ? "…" : "your flat rate") + "</dd></dl>" +
          (j.tou_note ? '<p class="small" data-testid="calc-fallback">Why flat pricing: ' + esc(j.tou_note) + ".</p>" : "");
        if (b.region_code) fetch("/calc/api/rates/" + encodeURIComponent(b.region_code), { credentials: "omit" })
          .then(function (r) { return r.json(); }).then(function (d) {
            var t = (d.tariffs || []).filter(function (x) { return x.id === b.tariff_id; })[0];
            document.getElementById("calc-source").textContent = (t && j.mode === "tou" ? t.source : d.source) || "–";
          });
      }, function () { out.innerHTML = '<p class="error" role="alert">The calculator could not be reached.</p>'; });
  });
})();
