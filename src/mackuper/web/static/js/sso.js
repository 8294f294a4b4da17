/* Users page, administrators only: invitations (a one-time link to set a password) and
   single sign-on settings (OpenID Connect). Loaded before Alpine (CSP build). */
(function () {
  "use strict";

  var call = window.Mackuper.api;

  function blankInvitation() {
    return { username: "", role: "viewer", can_download: false, expires_in_hours: 72 };
  }

  function mappingText(mapping) {
    return (mapping || []).map(function (item) { return item.group + " = " + item.role; }).join("\n");
  }

  function parseMapping(text) {
    return String(text || "").split("\n").map(function (line) { return line.trim(); })
      .filter(function (line) { return line !== ""; })
      .map(function (line) {
        var at = line.lastIndexOf("=");
        if (at === -1) return { group: line, role: "" };
        return { group: line.slice(0, at).trim(), role: line.slice(at + 1).trim() };
      });
  }

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("invitationsPanel", function () {
      return {
        invitations: [], form: blankInvitation(), fields: {}, error: "", notice: "", link: "", busy: false,
        async init() { await this.load(); },
        async load() {
          var result = await call("GET", "/api/invitations");
          if (result.ok) this.invitations = result.data.invitations; else this.error = result.data.error;
        },
        pending(invitation) { return invitation.state === "pending"; },
        async create() {
          this.busy = true; this.error = ""; this.notice = ""; this.fields = {}; this.link = "";
          var body = {
            username: this.form.username, role: this.form.role, can_download: this.form.can_download,
            expires_in_hours: Number(this.form.expires_in_hours)
          };
          var result = await call("POST", "/api/invitations", body);
          this.busy = false;
          if (result.ok) {
            this.link = result.data.link;
            this.notice = body.username + " invited: send them this link (shown once).";
            this.form = blankInvitation();
            await this.load();
            return;
          }
          this.fields = result.data.fields || {};
          this.error = result.data.error;
        },
        async withdraw(invitation) {
          this.error = ""; this.notice = ""; this.link = "";
          var result = await call("DELETE", "/api/invitations/" + invitation.id);
          if (result.ok) this.notice = "Invitation of " + invitation.username + " withdrawn."; else this.error = result.data.error;
          await this.load();
        }
      };
    });

    window.Alpine.data("ssoSettings", function () {
      return {
        settings: null, mapping: "", secret: "", secretState: "not set", redirectUri: "",
        fields: {}, error: "", notice: "", busy: false,
        async init() {
          var result = await call("GET", "/api/sso/settings");
          if (result.ok) this.take(result.data); else this.error = result.data.error;
        },
        take(data) {
          this.settings = data.settings;
          this.mapping = mappingText(data.settings.role_mapping);
          this.secretState = data.settings.secrets.client_secret;
          this.redirectUri = data.redirect_uri;
          this.secret = "";
        },
        loaded() { return this.settings !== null; },
        secretHint() { return "(" + this.secretState + "; blank keeps it)"; },
        async save() {
          this.busy = true; this.error = ""; this.notice = ""; this.fields = {};
          var body = Object.assign({}, this.settings, {
            client_secret: this.secret, role_mapping: parseMapping(this.mapping)
          });
          var result = await call("PUT", "/api/sso/settings", body);
          this.busy = false;
          if (result.ok) { this.take(result.data); this.notice = "Single sign-on settings saved."; return; }
          this.fields = result.data.fields || {};
          this.error = result.data.error;
        }
      };
    });
  });
})();
