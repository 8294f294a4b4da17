/* Two-factor login: the login's second step (code or passkey) and the account page
   (authenticator app, recovery codes, passkeys, the administrator's requirement).
   Loaded before Alpine (CSP build: no inline code). Passkeys use navigator.credentials
   with the options the server made (py_webauthn), converted from and to base64url. */
(function () {
  "use strict";

  var call = window.Mackuper.api;

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var index = 0; index < bytes.length; index += 1) binary += String.fromCharCode(bytes[index]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(list) {
    return (list || []).map(function (item) { return Object.assign({}, item, { id: toBuffer(item.id) }); });
  }

  function passkeyProblem(error) {
    if (error && error.name === "NotAllowedError") return "The passkey request was cancelled or timed out.";
    if (error && error.name === "InvalidStateError") return "This passkey is added already.";
    return "The browser could not use a passkey: " + (error && error.message ? error.message : error);
  }

  /* navigator.credentials.create() with the server's options; the credential as JSON. */
  async function createPasskey(options) {
    var publicKey = Object.assign({}, options, {
      challenge: toBuffer(options.challenge),
      user: Object.assign({}, options.user, { id: toBuffer(options.user.id) }),
      excludeCredentials: withBuffers(options.excludeCredentials),
    });
    var credential = await navigator.credentials.create({ publicKey: publicKey });
    var response = credential.response;
    return {
      id: credential.id, rawId: toText(credential.rawId), type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(response.clientDataJSON),
        attestationObject: toText(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : [],
      },
    };
  }

  /* navigator.credentials.get() with the server's options; the assertion as JSON. */
  async function usePasskey(options) {
    var publicKey = Object.assign({}, options, {
      challenge: toBuffer(options.challenge),
      allowCredentials: withBuffers(options.allowCredentials),
    });
    var credential = await navigator.credentials.get({ publicKey: publicKey });
    var response = credential.response;
    return {
      id: credential.id, rawId: toText(credential.rawId), type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {
        clientDataJSON: toText(response.clientDataJSON),
        authenticatorData: toText(response.authenticatorData),
        signature: toText(response.signature),
        userHandle: toText(response.userHandle),
      },
    };
  }

  async function passkeyLogin(self) {
    self.error = "";
    self.busy = true;
    try {
      var options = await call("POST", "/api/login/passkey/options");
      if (!options.ok) { self.error = options.data.error; return; }
      var credential;
      try { credential = await usePasskey(options.data); } catch (error) { self.error = passkeyProblem(error); return; }
      var result = await call("POST", "/api/login/passkey", { credential: credential });
      if (result.ok) window.location.assign(result.data.setup_complete ? "/" : "/setup");
      else self.error = result.data.error;
    } finally {
      self.busy = false;
    }
  }

  document.addEventListener("alpine:init", function () {
    var Alpine = window.Alpine;

    Alpine.data("loginSecondStep", function () {
      return {
        code: "", error: "", busy: false,
        async submit() {
          this.error = ""; this.busy = true;
          var result = await call("POST", "/api/login/code", { code: this.code });
          this.busy = false;
          if (result.ok) { window.location.assign(result.data.setup_complete ? "/" : "/setup"); return; }
          this.error = result.data.error;
          this.code = "";
          if (result.status === 409) window.location.assign("/login");
        },
        passkey() { return passkeyLogin(this); },
      };
    });

    Alpine.data("passwordlessLogin", function () {
      return {
        error: "", busy: false,
        supported() { return !!window.PublicKeyCredential; },
        passkey() { return passkeyLogin(this); },
      };
    });

    Alpine.data("twoFactorAccount", function () {
      return {
        status: null, error: "", notice: "", busy: false,
        enrolment: null, confirmCode: "", recoveryCodes: [],
        removeForm: null, passkeyName: "", policy: null,
        async init() {
          await this.load();
          if (this.$el.dataset.administrator === "1") {
            var policy = await call("GET", "/api/two-factor/policy");
            if (policy.ok) this.policy = policy.data.required;
          }
        },
        async load() {
          var result = await call("GET", "/api/account/two-factor");
          if (result.ok) this.status = result.data; else this.error = result.data.error;
        },
        ready() { return this.status !== null; },
        hasApp() { return this.status !== null && this.status.totp; },
        passkeys() { return this.status ? this.status.passkeys : []; },
        codesLeftText() {
          return this.status ? this.status.recovery_codes_left + " recovery codes left." : "";
        },
        hasRecoveryCodes() { return this.recoveryCodes.length > 0; },
        async startApp() {
          this.error = ""; this.notice = "";
          var result = await call("POST", "/api/account/totp");
          if (result.ok) { this.enrolment = result.data; this.confirmCode = ""; } else this.error = result.data.error;
        },
        async confirmApp() {
          this.error = "";
          var result = await call("POST", "/api/account/totp/confirm", { code: this.confirmCode });
          if (!result.ok) { this.error = result.data.error; return; }
          this.enrolment = null;
          this.recoveryCodes = result.data.recovery_codes;
          this.notice = "The authenticator app is set up.";
          await this.load();
        },
        askRemove(kind, passkey) {
          this.removeForm = { kind: kind, passkey: passkey || null, password: "", code: "" };
          this.error = ""; this.notice = "";
        },
        cancelRemove() { this.removeForm = null; },
        removingApp() { return this.removeForm !== null && this.removeForm.kind !== "passkey"; },
        removeTitle() {
          if (!this.removeForm) return "";
          if (this.removeForm.kind === "passkey") return "Remove the passkey " + this.removeForm.passkey.name;
          if (this.removeForm.kind === "codes") return "Make new recovery codes";
          return "Remove the authenticator app";
        },
        async confirmRemove() {
          var form = this.removeForm, result;
          this.error = "";
          if (form.kind === "passkey") {
            result = await call("DELETE", "/api/account/passkeys/" + form.passkey.id, { password: form.password });
          } else if (form.kind === "codes") {
            result = await call("POST", "/api/account/recovery-codes", { password: form.password, code: form.code });
          } else {
            result = await call("POST", "/api/account/totp/disable", { password: form.password, code: form.code });
          }
          if (!result.ok) { this.error = result.data.error; return; }
          this.removeForm = null;
          if (form.kind === "codes") { this.recoveryCodes = result.data.recovery_codes; this.notice = "New recovery codes made."; }
          else this.notice = form.kind === "passkey" ? "Passkey removed." : "The authenticator app is removed.";
          await this.load();
        },
        async addPasskey() {
          this.error = ""; this.notice = "";
          if (!window.PublicKeyCredential) { this.error = "This browser has no passkey support."; return; }
          var name = this.passkeyName.trim() || "Passkey";
          this.busy = true;
          try {
            var options = await call("POST", "/api/account/passkeys/options");
            if (!options.ok) { this.error = options.data.error; return; }
            var credential;
            try { credential = await createPasskey(options.data); } catch (error) { this.error = passkeyProblem(error); return; }
            var result = await call("POST", "/api/account/passkeys", { name: name, credential: credential });
            if (!result.ok) { this.error = result.data.error; return; }
            this.passkeyName = "";
            this.notice = "Passkey " + name + " added.";
            await this.load();
          } finally {
            this.busy = false;
          }
        },
        async setPolicy(event) {
          var wanted = event.target.checked;
          var result = await call("PUT", "/api/two-factor/policy", { required: wanted });
          if (result.ok) {
            this.policy = result.data.required;
            this.notice = wanted ? "Every account now needs two-factor login." : "Two-factor login is optional again.";
          } else { this.error = result.data.error; event.target.checked = this.policy; }
        },
        done() { window.location.assign("/"); },
      };
    });
  });
})();
