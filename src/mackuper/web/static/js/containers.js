/* Settings > Container engine: the Docker Engine API's address, the image that reads
   volumes, and "Test connection". Loaded before Alpine (CSP build: no inline code). */
(function () {
  "use strict";

  var call = window.Mackuper.api;

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("containerEngine", function () {
      return {
        form: { address: "", helper_image: "" }, effective: "", fields: {}, error: "", notice: "",
        busy: false, result: null, containers: [], volumes: [],
        async init() {
          var found = await call("GET", "/api/containers/engine");
          if (found.ok) this.fill(found.data); else this.error = found.data.error;
          this.list();
        },
        /* What the saved engine holds; nothing shown when no engine answers. */
        async list() {
          var found = await call("GET", "/api/containers");
          this.containers = found.ok ? found.data.containers : [];
          this.volumes = found.ok ? found.data.volumes : [];
        },
        labelText(container) {
          var labels = container.labels || {};
          return Object.keys(labels).filter(function (key) { return key.indexOf("mackuper.") === 0; })
            .map(function (key) { return key + "=" + labels[key]; }).join(", ") || "–";
        },
        fill(settings) {
          this.form = { address: settings.address, helper_image: settings.helper_image };
          this.effective = settings.effective;
        },
        effectiveHint() { return this.effective || "DOCKER_HOST, else /var/run/docker.sock"; },
        fieldError(name) { return this.fields[name] || ""; },
        async save() {
          this.busy = true; this.error = ""; this.notice = ""; this.fields = {};
          var saved = await call("PUT", "/api/containers/engine", this.form);
          this.busy = false;
          if (saved.ok) { this.fill(saved.data); this.notice = "Saved."; this.list(); return; }
          this.fields = saved.data.fields || {};
          this.error = saved.data.error;
        },
        async test() {
          this.busy = true; this.error = ""; this.notice = ""; this.fields = {}; this.result = null;
          var tested = await call("POST", "/api/containers/engine/test", { address: this.form.address });
          this.busy = false;
          if (tested.ok) { this.result = tested.data; return; }
          this.fields = tested.data.fields || {};
          this.error = tested.data.error;
        },
        resultText() {
          if (!this.result) return "";
          return (this.result.ok ? "Connected to " : "Not connected: ") + this.result.message;
        },
        resultClass() {
          return this.result && this.result.ok ? "text-emerald-700 dark:text-emerald-400" : "field-error";
        }
      };
    });
  });
})();
