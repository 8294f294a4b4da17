/* Settings > Schedules and history: the installation's time zone, missed-tick grace,
   concurrent runs and history cleanup. Loaded before Alpine (CSP build: no inline code). */
(function () {
  "use strict";

  /* One fetch helper for every page (static/js/app.js): CSRF header, plain errors. */
  var call = window.Mackuper.api;

  function whole(text) {
    var value = String(text === null || text === undefined ? "" : text).trim();
    if (value === "") return null;
    return /^[0-9]+$/.test(value) ? parseInt(value, 10) : value;
  }

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("installationSettings", function () {
      return {
        form: { timezone: "", missed_tick_grace_minutes: "", max_concurrent_runs: "", history_keep_days: "" },
        fields: {}, error: "", notice: "", busy: false,
        async init() {
          var result = await call("GET", "/api/settings/installation");
          if (result.ok) this.fill(result.data.settings); else this.error = result.data.error;
        },
        fill(settings) {
          this.form = {
            timezone: settings.timezone,
            missed_tick_grace_minutes: String(settings.missed_tick_grace_minutes),
            max_concurrent_runs: String(settings.max_concurrent_runs),
            history_keep_days: settings.history_keep_days === null ? "" : String(settings.history_keep_days)
          };
        },
        fieldError(name) { return this.fields[name] || ""; },
        async save() {
          this.busy = true; this.error = ""; this.notice = ""; this.fields = {};
          var result = await call("PUT", "/api/settings/installation", {
            timezone: this.form.timezone,
            missed_tick_grace_minutes: whole(this.form.missed_tick_grace_minutes),
            max_concurrent_runs: whole(this.form.max_concurrent_runs),
            history_keep_days: whole(this.form.history_keep_days)
          });
          this.busy = false;
          if (result.ok) { this.fill(result.data.settings); this.notice = "Saved."; return; }
          this.fields = result.data.fields || {};
          this.error = result.data.error;
        }
      };
    });
  });
})();
