/* Audit log (administrators only): filter and export. Loaded before Alpine. */
(function () {
  "use strict";

  var call = window.Mackuper.api;

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("auditPage", function () {
      return {
        events: [], error: "", filters: { actor: "", action: "", object: "" },
        async init() { await this.load(); },
        query() {
          var params = new URLSearchParams(), filters = this.filters;
          Object.keys(filters).forEach(function (name) { if (filters[name]) params.set(name, filters[name]); });
          var text = params.toString();
          return text ? "?" + text : "";
        },
        detailText(event) { return JSON.stringify(event.details); },
        exportUrl() { return "/api/audit/export" + this.query(); },
        async load() {
          this.error = "";
          var result = await call("GET", "/api/audit" + this.query());
          if (result.ok) this.events = result.data.events; else this.error = result.data.error;
        }
      };
    });
  });
})();
