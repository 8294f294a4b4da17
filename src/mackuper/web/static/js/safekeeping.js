/* Settings > Keep safe: the master key (after the password again) and the configuration
   export. Loaded before Alpine (CSP build: no inline code). */
(function () {
  "use strict";

  var call = window.Mackuper.api;

  function saveText(text, filename) {
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  }

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("safekeeping", function () {
      return {
        origin: "", path: "", password: "", passwordError: "", notice: "", busy: false,
        async init() {
          var result = await call("GET", "/api/settings/master-key");
          if (result.ok) { this.origin = result.data.origin; this.path = result.data.path || ""; }
        },
        whereText() {
          if (this.origin === "environment") return "It comes from the MACKUPER_MASTER_KEY environment variable: keep a copy of it (and of .env) apart from the database.";
          if (this.origin === "file") return "It is the file " + this.path + " in the data directory, not in the database.";
          return "";
        },
        async downloadKey() {
          this.passwordError = ""; this.notice = "";
          if (!this.password) { this.passwordError = "Type your password to download the master key."; return; }
          this.busy = true;
          var result = await call("POST", "/api/settings/master-key", { password: this.password });
          this.busy = false;
          this.password = "";
          if (!result.ok) { this.passwordError = (result.data.fields && result.data.fields.password) || result.data.error; return; }
          saveText(result.data.master_key + "\n", result.data.filename);
          this.notice = "Master key downloaded. Keep it in a password manager or a safe, not beside the database backups.";
        },
      };
    });
  });
})();
