/* Settings > Alerts: global notification channels (Apprise URLs). Loaded before Alpine.
   URLs hold tokens: the API only says "set", and a blank URL on edit keeps the stored one. */
(function () {
  "use strict";

  var EVENTS = [
    { name: "failure", label: "Failure" },
    { name: "warning", label: "Warning" },
    { name: "success", label: "Success" },
    { name: "start", label: "Start" },
    { name: "worker", label: "Worker stopped" }
  ];

  /* One fetch helper for every page (static/js/app.js): CSRF header, plain errors. */
  var call = window.Mackuper.api;

  function emptyChannel() {
    return { id: null, name: "", url: "", enabled: true,
      events: { failure: true, warning: true, success: false, start: false, worker: true } };
  }

  function hookForm(hooks, name) {
    var hook = (hooks && hooks[name]) || {};
    return { command: hook.command || "", timeout: hook.timeout ? String(hook.timeout) : "600",
      on_failure: hook.on_failure || (name === "pre" ? "abort" : "warn") };
  }

  function hookPayload(hook) {
    var seconds = parseInt(hook.timeout, 10);
    return { command: hook.command, timeout: isNaN(seconds) ? hook.timeout : seconds, on_failure: hook.on_failure };
  }

  document.addEventListener("alpine:init", function () {
    /* Jobs page: one job's alerts, pings and pre/post commands, opened by a
       `job-alerts` window event whose detail is { id, name }. */
    window.Alpine.data("jobAlerts", function () {
      return {
        job: null, form: null, stored: null, fields: {}, error: "", notice: "", busy: false,
        events: EVENTS.filter(function (event) { return event.name !== "worker"; }),
        async open(detail) {
          this.job = detail; this.form = null; this.fields = {}; this.error = ""; this.notice = "";
          var result = await call("GET", "/api/jobs/" + detail.id + "/alerts");
          if (!this.take(result)) return;
          this.fill(result.data);
        },
        fill(data) {
          var notifications = data.notifications || {};
          var events = notifications.events || { failure: true, warning: true, success: false, start: false };
          this.stored = { urls: notifications.urls || 0,
            pings: notifications.pings || { start: "not set", success: "not set", fail: "not set" } };
          this.form = { events: Object.assign({}, events),
            global_channels: notifications.global_channels !== false,
            urls: "", ping_start: "", ping_success: "", ping_fail: "", clear: [],
            pre: hookForm(data.hooks, "pre"), post: hookForm(data.hooks, "post") };
        },
        close() { this.job = null; this.form = null; },
        fieldError(name) { return this.fields[name] || ""; },
        urlState() { return this.stored.urls ? this.stored.urls + " URL(s) set (new ones replace them)" : "none set"; },
        pingState(kind) { return this.stored.pings[kind] === "set" ? "set (leave blank to keep)" : "not set"; },
        clearAll() { this.form.clear = ["urls", "ping_start", "ping_success", "ping_fail"]; this.notice = "Stored URLs will be removed when you save."; },
        take(result) {
          this.fields = (result.data && result.data.fields) || {};
          if (!result.ok) { this.error = result.data.error; return false; }
          this.error = "";
          return true;
        },
        async save() {
          this.busy = true; this.notice = "";
          var form = this.form;
          var body = {
            notifications: { events: form.events, global_channels: form.global_channels, urls: form.urls,
              ping_start: form.ping_start, ping_success: form.ping_success, ping_fail: form.ping_fail, clear: form.clear },
            hooks: { pre: hookPayload(form.pre), post: hookPayload(form.post) }
          };
          var result = await call("PUT", "/api/jobs/" + this.job.id + "/alerts", body);
          this.busy = false;
          if (this.take(result)) { this.fill(result.data); this.notice = "Alerts and commands saved."; }
        }
      };
    });

    window.Alpine.data("notificationChannels", function () {
      return {
        channels: [], events: EVENTS, form: null, fields: {}, error: "", notice: "", busy: false,
        async init() { await this.load(); },
        async load() {
          var result = await call("GET", "/api/notifications/channels");
          if (result.ok) this.channels = result.data.channels; else this.error = result.data.error;
        },
        eventList(channel) {
          return EVENTS.filter(function (event) { return channel.events[event.name]; })
            .map(function (event) { return event.label; }).join(", ") || "none";
        },
        startCreate() { this.form = emptyChannel(); this.fields = {}; this.error = ""; this.notice = ""; },
        startEdit(channel) {
          this.form = { id: channel.id, name: channel.name, url: "", enabled: channel.enabled,
            events: Object.assign({}, channel.events) };
          this.fields = {}; this.error = ""; this.notice = "";
        },
        cancelEdit() { this.form = null; },
        fieldError(name) { return this.fields[name] || ""; },
        take(result) {
          this.fields = (result.data && result.data.fields) || {};
          if (!result.ok) { this.error = result.data.error; return false; }
          this.error = "";
          return true;
        },
        async save() {
          this.busy = true; this.notice = "";
          var body = { name: this.form.name, url: this.form.url, enabled: this.form.enabled, events: this.form.events };
          var result = this.form.id
            ? await call("PUT", "/api/notifications/channels/" + this.form.id, body)
            : await call("POST", "/api/notifications/channels", body);
          this.busy = false;
          if (this.take(result)) { this.form = null; this.notice = "Channel saved."; await this.load(); }
        },
        async testForm() {
          this.busy = true; this.notice = "";
          var result = await call("POST", "/api/notifications/test", { id: this.form.id, url: this.form.url });
          this.busy = false;
          if (this.take(result)) this.notice = result.data.message;
        },
        async testChannel(channel) {
          this.busy = true; this.notice = "";
          var result = await call("POST", "/api/notifications/channels/" + channel.id + "/test");
          this.busy = false;
          if (this.take(result)) this.notice = result.data.message + " (" + channel.name + ")";
        },
        async remove(channel) {
          var result = await call("DELETE", "/api/notifications/channels/" + channel.id);
          if (this.take(result)) { this.notice = "Channel removed."; await this.load(); }
        }
      };
    });
  });
})();
