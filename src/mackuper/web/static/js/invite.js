/* Accepting an invitation: the token is the link's fragment (after #), which the
   browser never sends in a URL; it is posted to the API. Loaded before Alpine. */
(function () {
  "use strict";

  var call = window.Mackuper.api;

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("invitePage", function () {
      return {
        token: "", invitation: null, password: "", confirm: "", error: "", fields: {}, busy: false,
        checking() { return this.invitation === null && this.error === ""; },
        async init() {
          this.token = decodeURIComponent(window.location.hash.replace(/^#/, ""));
          if (!this.token) { this.error = "This page needs the whole invitation link; copy it again."; return; }
          var result = await call("POST", "/api/invitation", { token: this.token });
          if (result.ok) this.invitation = result.data; else this.error = result.data.error;
        },
        async submit() {
          this.busy = true; this.error = ""; this.fields = {};
          var result = await call("POST", "/api/invitation/accept", {
            token: this.token, password: this.password, password_confirm: this.confirm
          });
          this.busy = false;
          if (result.ok) { window.location.assign(result.data.setup_complete ? "/" : "/setup"); return; }
          this.fields = result.data.fields || {};
          this.error = result.data.error;
        }
      };
    });
  });
})();
