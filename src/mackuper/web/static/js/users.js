/* Users (administrators only): list, add, change role and downloads, disable, reset,
   delete. Loaded before Alpine (CSP build: no inline code). */
(function () {
  "use strict";

  var call = window.Mackuper.api;

  function lines(text) {
    return String(text || "").split("\n").map(function (line) { return line.trim(); })
      .filter(function (line) { return line !== ""; });
  }

  function blankForm() {
    return { username: "", password: "", role: "viewer", can_download: false, restore_targets: "" };
  }

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("usersPage", function () {
      return {
        users: [], form: blankForm(), fields: {}, error: "", notice: "", busy: false,
        reset: null, resetPassword: "",
        async init() { await this.load(); },
        targetsText(user) { return user.restore_targets.join(", ") || "–"; },
        stateText(user) { return (user.disabled ? "disabled" : "active") + (user.single_sign_on ? " · SSO" : ""); },
        async load() {
          var result = await call("GET", "/api/users");
          if (result.ok) this.users = result.data.users; else this.error = result.data.error;
        },
        async change(user, body, done) {
          this.error = ""; this.notice = "";
          var result = await call("PUT", "/api/users/" + user.id, body);
          if (result.ok) this.notice = done; else this.error = result.data.error;
          await this.load();
        },
        setRole(user, role) { return this.change(user, { role: role }, user.username + " is now " + role + "."); },
        setDownload(user, allowed) { return this.change(user, { can_download: allowed }, "Saved."); },
        toggleDisabled(user) {
          return this.change(user, { disabled: !user.disabled }, user.username + (user.disabled ? " may log in again." : " is disabled."));
        },
        startReset(user) { this.reset = user; this.resetPassword = ""; },
        async saveReset() {
          this.error = ""; this.notice = "";
          var result = await call("POST", "/api/users/" + this.reset.id + "/password", { password: this.resetPassword });
          if (result.ok) { this.notice = "Password of " + this.reset.username + " reset."; this.reset = null; }
          else this.error = result.data.error;
        },
        async remove(user) {
          if (!window.confirm("Delete " + user.username + "? Their API tokens stop working.")) return;
          this.error = ""; this.notice = "";
          var result = await call("DELETE", "/api/users/" + user.id);
          if (result.ok) this.notice = user.username + " deleted."; else this.error = result.data.error;
          await this.load();
        },
        async create() {
          this.busy = true; this.error = ""; this.notice = ""; this.fields = {};
          var body = {
            username: this.form.username, password: this.form.password, role: this.form.role,
            can_download: this.form.can_download, restore_targets: lines(this.form.restore_targets)
          };
          var result = await call("POST", "/api/users", body);
          this.busy = false;
          if (result.ok) { this.notice = body.username + " added."; this.form = blankForm(); await this.load(); return; }
          this.fields = result.data.fields || {};
          this.error = result.data.error;
        }
      };
    });
  });
})();
