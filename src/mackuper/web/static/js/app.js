/* Mackuper's Alpine components. Loaded before Alpine (CSP build), registered on alpine:init.
   Directive expressions in the templates stay simple: names, calls and comparisons. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  async function api(method, url, body) {
    var options = { method: method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (method !== "GET") options.headers["X-CSRF-Token"] = csrfToken();
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    var response;
    try {
      response = await fetch(url, options);
    } catch (networkError) {
      return { ok: false, status: 0, data: { error: "Mackuper is not answering; check that the server is running." } };
    }
    var data = {};
    try { data = await response.json(); } catch (parseError) {
      data = { error: response.ok ? "" : serverErrorText(response.status) };
    }
    if (!response.ok && !data.error) data.error = serverErrorText(response.status);
    if (response.status === 401 && url.indexOf("/api/login") === -1) { window.location.assign("/login"); }
    return { ok: response.ok, status: response.status, data: data };
  }

  function serverErrorText(status) {
    if (status >= 500) {
      return "The server ran into a problem (error " + status + "). Try again; if it keeps happening, the details are in Mackuper's log.";
    }
    return "The request was refused (error " + status + "). Reload the page and try again.";
  }

  /* Average speed since the run started, in bytes per second (0 before it starts). */
  function runRate(run) {
    if (!run || !run.started_at) return 0;
    var end = run.finished_at ? new Date(run.finished_at).getTime() : Date.now();
    var seconds = (end - new Date(run.started_at).getTime()) / 1000;
    return seconds > 0.5 ? run.bytes_read / seconds : 0;
  }

  /* Percent done against what the job's last good run read; null when unknown. */
  /* Without an estimate the bar shows a short pulsing stub: a full bar would look done. */
  var UNKNOWN_WIDTH = 12;

  function runPercent(run, expected) {
    if (!run || !expected) return null;
    return Math.min(99, Math.floor((100 * run.bytes_read) / expected));
  }

  function runEta(run, expected) {
    var rate = runRate(run);
    if (!expected) return "no estimate yet";
    if (rate <= 0) return "estimating…";
    var left = (expected - run.bytes_read) / rate;
    return left <= 1 ? "almost done" : "about " + formatDuration(left) + " left";
  }

  function formatBytes(bytes) {
    if (bytes === null || bytes === undefined) return "–";
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var value = Number(bytes), unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    seconds = Math.round(seconds);
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function relativeTime(iso) {
    if (!iso) return "never";
    var delta = (Date.now() - new Date(iso).getTime()) / 1000;
    var future = delta < 0;
    delta = Math.abs(delta);
    var text;
    if (delta < 45) text = "a few seconds";
    else if (delta < 3600) text = Math.round(delta / 60) + " min";
    else if (delta < 86400) text = Math.round(delta / 3600) + " h";
    else if (delta < 1.5 * 86400) text = "1 day";
    else text = Math.round(delta / 86400) + " days";
    return future ? "in " + text : text + " ago";
  }

  /* The installation's time zone (base.html): every time is shown in it, or in a job's
     own zone, with the zone's name, never in whatever zone the browser is in. */
  function installationZone() {
    var meta = document.querySelector('meta[name="mackuper-timezone"]');
    return (meta && meta.getAttribute("content")) || "UTC";
  }

  function absoluteTime(iso, zone) {
    if (!iso) return "";
    var options = {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
      timeZone: zone || installationZone(), timeZoneName: "short",
    };
    try {
      return new Date(iso).toLocaleString(undefined, options);
    } catch (unknownZone) {
      return new Date(iso).toLocaleString(undefined, Object.assign(options, { timeZone: "UTC" }));
    }
  }

  var RUN_KINDS = {
    backup: { icon: "\u2191", word: "Backup" },
    restore: { icon: "\u2193", word: "Restore" },
    verify: { icon: "\u2713", word: "Verify" },
  };

  function runKind(run) {
    var kind = RUN_KINDS[run && run.kind] || { icon: "\u2022", word: String((run && run.kind) || "") };
    if (run && run.kind === "restore" && run.summary && run.summary.dry_run) {
      return { icon: kind.icon, word: "Restore (dry run)" };
    }
    return kind;
  }

  var RETENTION_FIELDS = ["keep_days", "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"];

  function retentionForm(policy) {
    var form = {};
    RETENTION_FIELDS.forEach(function (name) {
      form[name] = policy && policy[name] ? String(policy[name]) : "";
    });
    return form;
  }

  function retentionPayload(form) {
    var policy = {};
    RETENTION_FIELDS.forEach(function (name) {
      var text = String(form[name] || "").trim();
      if (text !== "") policy[name] = /^[0-9]+$/.test(text) ? parseInt(text, 10) : text;
    });
    return policy;
  }

  function encryptionForm(settings) {
    var current = settings || { mode: "none" };
    return {
      mode: current.mode || "none", passphrase: "", passphrase_set: current.passphrase === "set",
      recipients: (current.recipients || []).join("\n"), identity: "", generated: false,
      store_identity: current.identity === "stored", identity_stored: current.identity === "stored",
      identity_saved: false,
    };
  }

  function encryptionPayload(form) {
    var payload = { mode: form.mode };
    if (form.mode === "passphrase") payload.passphrase = form.passphrase;
    if (form.mode === "recipients") {
      payload.recipients = form.recipients;
      payload.store_identity = form.store_identity;
      payload.identity_saved = form.identity_saved;
      // The private key leaves the browser only when the user chose to store it.
      if (form.store_identity && form.identity) payload.identity = form.identity;
    }
    return payload;
  }

  function blankSSH() {
    return {
      host: "", port: "22", username: "", auth: "password", transfer: "auto", host_key: "",
      password: "", private_key: "", passphrase: "", secrets: {},
    };
  }

  function sshForm(source) {
    var form = blankSSH();
    ["host", "username", "auth", "transfer", "host_key"].forEach(function (name) {
      if (source[name]) form[name] = source[name];
    });
    if (source.port) form.port = String(source.port);
    form.secrets = source.secrets || {};
    return form;
  }

  /* Database sources: what the form shows, over the settings the form does not (a
     PostgreSQL job's SSH host, say), which go back as they came. */
  var DATABASE_DEFAULTS = {
    postgresql: { host: "127.0.0.1", port: "5432", username: "postgres" },
    mariadb: { host: "127.0.0.1", port: "3306", username: "root" },
    redis: { host: "127.0.0.1", port: "6379", username: "" },
    sqlite: { host: "", port: "", username: "" },
  };

  function databaseForm(kind, source) {
    var defaults = DATABASE_DEFAULTS[kind] || DATABASE_DEFAULTS.postgresql;
    var known = source || {};
    return {
      host: known.host || defaults.host,
      port: known.port ? String(known.port) : defaults.port,
      username: known.username !== undefined ? known.username : defaults.username,
      password: "",
      maintenance_database: known.maintenance_database || "postgres",
      databases: (known.databases || []).join("\n"),
      include_globals: known.include_globals !== false,
      dump_format: known.dump_format || "custom",
      schema_only: !!known.schema_only,
      exclude_tables: (known.exclude_tables || []).join("\n"),
      container: known.container || "",
      // The dump tool on an SSH host (a server on its loopback, SQLite files on its disk).
      ssh_use: !!known.ssh_host,
      ssh_host: known.ssh_host || "",
      ssh_port: known.ssh_port ? String(known.ssh_port) : "22",
      ssh_username: known.ssh_username || "",
      ssh_auth: known.ssh_auth || "password",
      ssh_password: "", ssh_private_key: "", ssh_passphrase: "",
      ssh_host_key: known.ssh_host_key || "",
      secrets: known.secrets || {},
      original: known,
    };
  }

  function lines(text) {
    return String(text || "").split("\n").map(function (line) { return line.trim(); }).filter(Boolean);
  }

  var helpers = {
    bytes: formatBytes,
    duration: formatDuration,
    ago: relativeTime,
    when: absoluteTime,
    zone: installationZone,
    kindIcon: function (run) { return runKind(run).icon; },
    kindWord: function (run) { return runKind(run).word; },
    badge: function (status) { return "badge badge-" + (status === "skipped" ? "cancelled" : status); },
    rateText: function (run) { return formatBytes(runRate(run)) + "/s"; },
    percentOf: runPercent,
    etaText: runEta,
  };

  function emptyDestination() {
    return {
      id: null, name: "", kind: "s3", bucket: "", region: "us-east-1", endpoint_url: "", prefix: "",
      path_style: false, access_key_id: "", secret_access_key: "", path: "", storage_class: "",
      server_side_encryption: "", object_lock_mode: "", lock_days: "", delete_access_key_id: "",
      delete_secret_access_key: "",
      host: "", port: "22", username: "", auth: "password", password: "", private_key: "",
      passphrase: "", host_key: "", remote_type: "", options: {}, options_text: "", secret_options: "",
      bandwidth_limit: "", bandwidth_window: "",
    };
  }

  /* A stored destination's settings as its form holds them (rclone options as lines). */
  function destinationForm(destination) {
    var form = Object.assign(emptyDestination(), destination.config, {
      id: destination.id, name: destination.name, kind: destination.kind, secrets: destination.secrets,
    });
    form.port = String(form.port || "22");
    form.options_text = Object.keys(form.options || {}).map(function (name) {
      return name + " = " + form.options[name];
    }).join("\n");
    return form;
  }

  /* SFTP destinations: show the server's host key (nothing is sent before it is trusted). */
  function hostKeyState(field) {
    return {
      hostKeyResult: null,
      secretPlaceholder: function (name) {
        var secrets = this[field].secrets || {};
        return secrets[name] === "set" ? "set (leave blank to keep)" : "";
      },
      hasHostKey: function () { return Boolean(this[field].host_key); },
      hostKeyText: function () { return "Trusted host key: " + this[field].host_key.split(" ")[0]; },
      hostKeyMessage: function () { return this.hostKeyResult ? this.hostKeyResult.message : ""; },
      canTrustHostKey: function () {
        var r = this.hostKeyResult;
        return Boolean(r && r.host_key && (r.status === "untrusted" || r.status === "mismatch"));
      },
      async fetchHostKey() {
        var form = this[field];
        var source = { host: form.host, username: form.username, auth: form.auth, password: form.password,
          private_key: form.private_key, passphrase: form.passphrase, host_key: form.host_key };
        var port = String(form.port || "").trim();
        if (port !== "") source.port = /^[0-9]+$/.test(port) ? parseInt(port, 10) : port;
        this.busy = true; this.hostKeyResult = null;
        var result = await api("POST", "/api/ssh/test", { source: source });
        this.busy = false;
        if (result.ok) this.hostKeyResult = result.data; else this.takeResult(result);
      },
      trustHostKey: function () { this[field].host_key = this.hostKeyResult.host_key; this.hostKeyResult = null; },
    };
  }

  function destinationPayload(form) {
    var payload = { name: form.name, kind: form.kind, id: form.id };
    // MiB/s as a number; other text goes as typed, to be refused by name.
    var limit = String(form.bandwidth_limit || "").trim();
    if (limit !== "") payload.bandwidth_limit = /^[0-9]+([.][0-9]+)?$/.test(limit) ? Number(limit) : limit;
    payload.bandwidth_window = String(form.bandwidth_window || "").trim();
    if (form.kind === "local") { payload.path = form.path; return payload; }
    if (form.kind === "sftp") {
      ["host", "username", "auth", "password", "private_key", "passphrase", "path", "host_key"].forEach(function (key) {
        payload[key] = form[key];
      });
      var port = String(form.port || "").trim();
      if (port !== "") payload.port = /^[0-9]+$/.test(port) ? parseInt(port, 10) : port;
      return payload;
    }
    if (form.kind === "rclone") {
      ["remote_type", "path", "secret_options"].forEach(function (key) { payload[key] = form[key]; });
      payload.options = form.options_text;
      return payload;
    }
    ["bucket", "region", "endpoint_url", "prefix", "access_key_id", "secret_access_key",
      "storage_class", "server_side_encryption", "object_lock_mode", "delete_access_key_id",
      "delete_secret_access_key"].forEach(function (key) { payload[key] = form[key]; });
    payload.path_style = !!form.path_style;
    // Whole days as a number; other text goes as typed, to be refused by name.
    var days = String(form.lock_days || "").trim();
    if (days !== "") payload.lock_days = /^[0-9]+$/.test(days) ? parseInt(days, 10) : days;
    return payload;
  }

  /* A form mixin: busy flag, general message, field errors. */
  function formState() {
    return {
      busy: false, error: "", notice: "", errors: {},
      fieldError: function (name) { return this.errors[name] || ""; },
      hasError: function (name) { return this.errors[name] ? "true" : "false"; },
      takeResult: function (result) {
        this.errors = (result.data && result.data.fields) || {};
        this.error = result.ok ? "" : (result.data.error || "Something went wrong.");
        return result.ok;
      },
    };
  }

  /* Shared with the other page scripts (restore.js, notifications.js, installation.js). */
  window.Mackuper = { api: api, csrfToken: csrfToken, formatBytes: formatBytes };

  document.addEventListener("alpine:init", function () {
    var Alpine = window.Alpine;

    Alpine.data("setupWizard", function () {
      return Object.assign(formState(), hostKeyState("destination"), {
        step: 1,
        admin: { username: "admin", password: "", password_confirm: "" },
        destination: Object.assign(emptyDestination(), { name: "Main storage" }),
        tested: false, testing: false,
        /* A problem tied to a field is shown under that field only, not twice. */
        takeResult: function (result) {
          this.errors = (result.data && result.data.fields) || {};
          var general = result.ok ? "" : (result.data.error || "Something went wrong.");
          this.error = Object.keys(this.errors).length ? "" : general;
          return result.ok;
        },
        testLabel() { return this.testing ? "Testing…" : "Test connection"; },
        async init() {
          var result = await api("GET", "/api/setup/status");
          if (result.ok && result.data.admin_created) this.step = 2;
        },
        isStep: function (n) { return this.step === n; },
        isKind: function (kind) { return this.destination.kind === kind; },
        async createAdmin() {
          this.busy = true;
          var result = await api("POST", "/api/setup/admin", this.admin);
          this.busy = false;
          if (result.status === 409) { window.location.assign("/login"); return; }
          if (this.takeResult(result)) window.location.reload();
        },
        async testConnection() {
          this.busy = true; this.testing = true; this.notice = "";
          var result = await api("POST", "/api/destinations/test", destinationPayload(this.destination));
          this.busy = false; this.testing = false;
          this.tested = this.takeResult(result);
          if (this.tested) this.notice = result.data.message;
        },
        async saveDestination() {
          this.busy = true; this.notice = "";
          var result = await api("POST", "/api/destinations", destinationPayload(this.destination));
          if (this.takeResult(result)) {
            await api("POST", "/api/setup/finish");
            window.location.assign("/jobs");
            return;
          }
          this.busy = false;
        },
        async skip() {
          await api("POST", "/api/setup/finish");
          window.location.assign("/");
        },
      });
    });

    Alpine.data("loginForm", function () {
      return Object.assign(formState(), {
        username: "", password: "",
        async submit() {
          this.busy = true;
          var result = await api("POST", "/api/login", { username: this.username, password: this.password });
          this.busy = false;
          if (!this.takeResult(result)) return;
          if (result.data.second_step) window.location.assign("/login/second-step");
          else window.location.assign(result.data.setup_complete ? "/" : "/setup");
        },
      });
    });

    Alpine.data("headerStatus", function () {
      return {
        status: null, timer: null,
        async init() {
          await this.load();
          var self = this;
          this.timer = setInterval(function () { self.load(); }, 15000);
        },
        destroy() { clearInterval(this.timer); },
        async load() {
          var result = await api("GET", "/api/ui/status");
          this.status = result.ok ? result.data : null;
        },
        known() { return this.status !== null; },
        healthy() { return this.status !== null && this.status.scheduler_running; },
        text() {
          if (!this.status) return "";
          var text = this.status.scheduler_running ? "Scheduler running" : "Scheduler stopped";
          if (this.status.running) text += " · " + this.status.running + " running";
          return text;
        },
        hint() {
          return this.healthy() ? "A worker is alive and will start scheduled backups."
            : "No worker has reported in the last 30 seconds: scheduled backups will not start. Check that `mackuper serve` or `mackuper worker` is running.";
        },
      };
    });

    /* The header's menu button: on phones the tabs fold behind it (base.html). */
    Alpine.data("headerMenu", function () {
      return {
        open: false,
        toggle() { this.open = !this.open; },
        close() { this.open = false; },
        expanded() { return this.open ? "true" : "false"; },
      };
    });

    Alpine.data("logoutButton", function () {
      return {
        async logout() {
          await api("POST", "/api/logout");
          window.location.assign("/login");
        },
      };
    });

    Alpine.data("dashboard", function () {
      return Object.assign({}, helpers, {
        data: null, error: "", timer: null, chart: [], chartTotals: { bytes: 0, seconds: 0 }, estimates: {},
        async init() {
          await this.load();
          await this.loadChart();
          var self = this;
          this.timer = setInterval(function () { self.load(); }, 3000);
        },
        destroy() { clearInterval(this.timer); },
        async load() {
          var result = await api("GET", "/api/dashboard");
          if (result.ok) { this.data = result.data; this.error = ""; } else { this.error = result.data.error; }
          if (result.ok) await this.loadEstimates(result.data.running);
        },
        async loadEstimates(running) {
          for (var i = 0; i < running.length; i++) {
            var id = String(running[i].id);
            // None yet (a first run's source still being counted): ask again next time.
            if (this.estimates[id] !== undefined && this.estimates[id] !== null) continue;
            var estimate = await api("GET", "/api/ui/runs/" + id + "/estimate");
            this.estimates[id] = estimate.ok ? estimate.data.expected_bytes : null;
          }
        },
        async loadChart() {
          var result = await api("GET", "/api/ui/chart");
          if (!result.ok) return;
          var days = result.data.days;
          var maxBytes = 1, maxSeconds = 1, totals = { bytes: 0, seconds: 0 };
          days.forEach(function (day) {
            maxBytes = Math.max(maxBytes, day.bytes); maxSeconds = Math.max(maxSeconds, day.seconds);
            totals.bytes += day.bytes; totals.seconds += day.seconds;
          });
          this.chartTotals = totals;
          this.chart = days.map(function (day) {
            var label = new Date(day.date + "T12:00:00Z").toLocaleDateString(undefined, { month: "short", day: "numeric" });
            return {
              date: day.date,
              sizeStyle: { height: (day.bytes ? Math.max(3, (100 * day.bytes) / maxBytes) : 0) + "%" },
              timeStyle: { height: (day.seconds ? Math.max(3, (100 * day.seconds) / maxSeconds) : 0) + "%" },
              sizeTitle: label + ": " + formatBytes(day.bytes),
              timeTitle: label + ": " + formatDuration(day.seconds),
            };
          });
        },
        expectedFor(run) { var value = this.estimates[String(run.id)]; return value === undefined ? null : value; },
        barStyle(run) {
          var percent = runPercent(run, this.expectedFor(run));
          return { width: (percent === null ? UNKNOWN_WIDTH : percent) + "%" };
        },
        hasEstimate(run) { return this.expectedFor(run) !== null; },
        sizeSummary() { return "Backup size per day over the last 30 days; " + formatBytes(this.chartTotals.bytes) + " in total"; },
        timeSummary() { return "Backup duration per day over the last 30 days; " + formatDuration(this.chartTotals.seconds) + " in total"; },
        loaded() { return this.data !== null; },
        schedulerText() { return this.data && this.data.scheduler.running ? "Running" : "Stopped"; },
        lastText() {
          if (!this.data || !this.data.last_backup) return "Never";
          return relativeTime(this.data.last_backup.finished_at);
        },
        successRateText() {
          return this.data && this.data.success_rate !== null ? this.data.success_rate + " %" : "–";
        },
        attention() { return this.data ? this.data.attention : []; },
        needsAttention() { return this.attention().length > 0; },
        headline() {
          var count = this.attention().length;
          if (!count) return "All is well: every job's last backup succeeded and none is overdue";
          return count === 1 ? "1 thing needs attention" : count + " things need attention";
        },
        headlineClass() {
          return this.needsAttention() ? "text-red-700 dark:text-red-400" : "text-emerald-700 dark:text-emerald-400";
        },
        attentionKey(item) { return [item.kind, item.job_id, item.destination_id, item.run_id].join("-"); },
        attentionLabel(item) {
          return {
            backup_failed: "Backup failed", backup_warning: "Backup warning", overdue: "Overdue",
            destination_failing: "Destination failing", verify_failed: "Verification failed",
          }[item.kind] || item.kind;
        },
        attentionWho(item) { return item.job_name || ""; },
        attentionWhen(item) { return item.kind === "overdue" ? "due " + relativeTime(item.at) : relativeTime(item.at); },
        attentionHref(item) { return item.run_id ? "/runs/" + item.run_id : "/jobs"; },
      });
    });

    Alpine.data("jobsPage", function () {
      return Object.assign(formState(), helpers, {
        jobs: [], destinations: [], workers: [], workerLabels: [], loaded: false, editing: false, form: null, preview: [],
        previewError: "", warning: "", confirmDelete: null, deleteBackups: false, sshResult: null, sshBusy: false, dbResult: null, dbBusy: false, retentionPreview: null, keyNotice: "",
        proposals: [], engineVolumes: [],
        async init() {
          await this.load();
          var params = new URLSearchParams(window.location.search);
          if (params.get("new") === "1") this.startCreate();
        },
        overview: {},
        async load() {
          var jobs = await api("GET", "/api/jobs");
          var destinations = await api("GET", "/api/destinations");
          var overview = await api("GET", "/api/ui/jobs");
          var workers = await api("GET", "/api/ui/workers");
          if (workers.ok) { this.workers = workers.data.workers; this.workerLabels = workers.data.labels; }
          if (jobs.ok) this.jobs = jobs.data.jobs; else this.error = jobs.data.error;
          if (destinations.ok) this.destinations = destinations.data.destinations;
          if (overview.ok) this.overview = overview.data.jobs;
          this.loaded = true;
          this.loadContainers();
        },
        info(job) { return this.overview[String(job.id)] || {}; },
        nextRunText(job) {
          if (!job.enabled) return "–";
          var next = this.info(job).next_run;
          return next ? relativeTime(next) : "–";
        },
        nextRunTitle(job) { return absoluteTime(this.info(job).next_run, this.info(job).timezone); },
        lastStatus(job) { return this.info(job).last_status || ""; },
        lastRunHref(job) { return "/runs/" + this.info(job).last_run_id; },
        sourceText(job) {
          var source = job.source || {};
          var kind = job.source_kind;
          var names = { postgresql: "PostgreSQL", mariadb: "MariaDB", redis: "Redis" };
          if (names[kind]) {
            var databases = (source.databases || []).length ? source.databases.join(", ") + " " : "";
            if (kind !== "redis" && !databases) databases = "every database ";
            return names[kind] + " " + databases + "on " + source.host + ":" + source.port;
          }
          if (kind === "volume") {
            var parts = [];
            if ((source.volumes || []).length) parts.push("Docker volumes " + source.volumes.join(", "));
            if ((source.container_paths || []).length) parts.push("container paths " + source.container_paths.join(", "));
            return parts.join(" and ");
          }
          var paths = source.paths || [];
          var where = kind === "sqlite" ? "SQLite " : source.host ? source.host + ":" : "";
          return paths.length ? where + paths.join(", ") : kind;
        },
        /* The engine's volumes and the jobs its containers' labels propose; quiet when
           no engine answers (most installations have none). */
        async loadContainers() {
          var found = await api("GET", "/api/containers");
          if (!found.ok) return;
          this.proposals = found.data.proposals;
          this.engineVolumes = found.data.volumes;
        },
        proposalText(proposal) {
          var text = "volumes " + (proposal.source.volumes.join(", ") || "none");
          if (proposal.stop_containers.length) text += "; stops " + proposal.stop_containers.join(", ");
          return text;
        },
        useProposal(proposal) {
          this.startCreate();
          this.form.name = proposal.name;
          this.form.source_kind = "volume";
          this.form.volumes = proposal.source.volumes.join("\n");
          this.form.stop_containers = proposal.stop_containers.join("\n");
          if (proposal.schedule) this.form.schedule = proposal.schedule;
          this.updatePreview();
        },
        isVolume() { return this.form.source_kind === "volume"; },
        isEmpty() { return this.loaded && this.jobs.length === 0; },
        blankForm() {
          return {
            id: null, name: "", source_kind: "local", paths: "", excludes: "", archive_format: "tar.gz", ssh: blankSSH(),
            db: databaseForm("postgresql", null), saved_kind: null,
            compression_level: "", schedule: "0 2 * * *", timezone: "", enabled: true,
            retention: retentionForm(null), encryption: encryptionForm(null),
            destination_ids: this.destinations.length ? [this.destinations[0].id] : [],
            // One worker: its files are the ones this job can reach, so it is the choice.
            worker_label: this.workers.length === 1 && this.workers[0].labels.length ? this.workers[0].labels[0] : "",
            backup_mode: "full", full_every_runs: "7", full_every_days: "",
            volumes: "", container_paths: "", stop_containers: "",
          };
        },
        labelChoices() {
          var labels = this.workerLabels.slice();
          if (this.form && this.form.worker_label && labels.indexOf(this.form.worker_label) === -1) labels.push(this.form.worker_label);
          return labels;
        },
        workerHint() {
          if (!this.workers.length) return "(no worker is running now)";
          return "(the machine whose folders these are; " + this.workers.length + " worker(s) running)";
        },
        startCreate() { this.form = this.blankForm(); this.errors = {}; this.error = ""; this.editing = true; this.updatePreview(); },
        startEdit(job) {
          this.form = {
            id: job.id, name: job.name, source_kind: job.source_kind, ssh: sshForm(job.source),
            db: databaseForm(job.source_kind, job.source), saved_kind: job.source_kind,
            paths: (job.source.paths || []).join("\n"), excludes: (job.source.excludes || []).join("\n"),
            archive_format: job.archive_format,
            compression_level: job.compression_level === null ? "" : String(job.compression_level),
            schedule: job.schedule || "", timezone: job.timezone || "", enabled: job.enabled,
            retention: retentionForm(job.retention), encryption: encryptionForm(job.encryption),
            destination_ids: job.destination_ids.slice(), worker_label: job.worker_label || "",
            volumes: (job.source.volumes || []).join("\n"), container_paths: (job.source.container_paths || []).join("\n"), stop_containers: (job.stop_containers || []).join("\n"),
            backup_mode: job.backup_mode.mode,
            full_every_runs: job.backup_mode.full_every_runs === null ? "" : String(job.backup_mode.full_every_runs),
            full_every_days: job.backup_mode.full_every_days === null ? "" : String(job.backup_mode.full_every_days),
          };
          this.retentionPreview = null;
          this.errors = {}; this.error = ""; this.editing = true; this.updatePreview();
        },
        cancelEdit() { this.editing = false; this.form = null; },
        hasDestination(id) { return this.form.destination_ids.indexOf(id) !== -1; },
        toggleDestination(id) {
          var index = this.form.destination_ids.indexOf(id);
          if (index === -1) this.form.destination_ids.push(id); else this.form.destination_ids.splice(index, 1);
        },
        setPreset(cron) { this.form.schedule = cron; this.updatePreview(); },
        async updatePreview() {
          if (!this.form || !this.form.schedule) { this.preview = []; this.previewError = ""; return; }
          var query = "?cron=" + encodeURIComponent(this.form.schedule) + "&timezone=" + encodeURIComponent(this.form.timezone || "");
          var result = await api("GET", "/api/schedule/preview" + query);
          // In the job's zone (the one the schedule fires in), labelled, not the browser's.
          this.preview = result.ok ? result.data.next.map(function (time) { return absoluteTime(time, result.data.timezone); }) : [];
          this.previewError = result.ok ? "" : result.data.error;
        },
        payload() {
          var level = this.form.compression_level === "" ? null : parseInt(this.form.compression_level, 10);
          return {
            name: this.form.name, source_kind: this.form.source_kind,
            source: this.sourcePayload(),
            archive_format: this.form.archive_format, compression_level: level,
            schedule: this.form.schedule, timezone: this.form.timezone, enabled: this.form.enabled,
            retention: retentionPayload(this.form.retention), encryption: encryptionPayload(this.form.encryption),
            destination_ids: this.form.destination_ids,
            worker_label: this.isSSH() ? null : (this.form.worker_label || null),
            stop_containers: lines(this.form.stop_containers),
            backup_mode: {
              mode: this.form.backup_mode,
              full_every_runs: this.form.full_every_runs === "" ? null : parseInt(this.form.full_every_runs, 10),
              full_every_days: this.form.full_every_days === "" ? null : parseInt(this.form.full_every_days, 10),
            },
          };
        },
        async previewRetention() {
          var policy = retentionPayload(this.form.retention);
          var query = Object.keys(policy).map(function (name) {
            return encodeURIComponent(name) + "=" + encodeURIComponent(policy[name]);
          }).join("&");
          var result = await api("GET", "/api/jobs/" + this.form.id + "/retention/preview?" + query);
          if (!result.ok) { this.retentionPreview = null; this.errors = { retention: result.data.error }; return; }
          this.retentionPreview = result.data;
        },
        retentionSummary() {
          var data = this.retentionPreview;
          if (!data) return "";
          if (!data.backups.length) return "No stored backup yet.";
          return data.delete_count + " would be deleted, " + data.keep_count + " kept.";
        },
        retentionItems() { return this.retentionPreview ? this.retentionPreview.backups : []; },
        retentionLine(item) {
          /* Chains (issue 17): which point of which chain, what is kept only because a
             kept point needs it, and a point whose chain lost an archive. */
          var chain = !item.chain ? "" : item.chain.level
            ? " (incremental " + item.chain.level + " on the full of run " + item.chain.full_run_id + ")"
            : " (full, start of a chain)";
          var missing = (item.missing || []).map(function (id) { return id ? "run " + id : "an archive never in the catalog"; });
          var broken = missing.length ? "; chain broken: " + missing.join(", ") + " is gone" : "";
          var verdict = item.kept_for_chain ? "keep only because a kept point needs it (" + item.reasons.join(", ") + ")"
            : item.keep ? "keep (" + item.reasons.join(", ") + ")"
            : item.locked_until ? "locked until " + absoluteTime(item.locked_until) + ", deleted after that" : "delete";
          return "Run " + item.run_id + ", " + absoluteTime(item.finished_at) + chain + ": " + verdict + broken;
        },
        async save() {
          this.busy = true;
          var result = this.form.id
            ? await api("PUT", "/api/jobs/" + this.form.id, this.payload())
            : await api("POST", "/api/jobs", this.payload());
          this.busy = false;
          this.warning = result.ok ? (result.data.warnings || []).join(" ") : "";
          if (this.takeResult(result)) { this.editing = false; this.notice = "Job saved."; await this.load(); }
        },
        encryptionIs(mode) { return this.form.encryption.mode === mode; },
        passphraseHint() { return this.form.encryption.passphrase_set ? "(set; leave blank to keep)" : "(at least 10 characters)"; },
        identityHint() { return this.form.encryption.identity_stored ? "(stored; leave blank to keep)" : "(AGE-SECRET-KEY-1...)"; },
        showIdentity() { return this.form.encryption.generated || this.form.encryption.store_identity; },
        /* A generated private key that is neither stored here nor confirmed saved: the
           one careless click that would make every backup of the job unrecoverable. */
        needsKeyConfirmation() {
          var form = this.form && this.form.encryption;
          return !!form && form.mode === "recipients" && form.generated && !form.store_identity && !form.identity_saved;
        },
        async copyKey() {
          try {
            await navigator.clipboard.writeText(this.form.encryption.identity);
            this.keyNotice = "Private key copied.";
          } catch (error) {
            this.keyNotice = "Copying was refused by the browser: select the key and copy it, or download it.";
          }
        },
        downloadKey() {
          var blob = new Blob([this.form.encryption.identity + "\n"], { type: "text/plain" });
          var link = document.createElement("a");
          link.href = URL.createObjectURL(blob);
          link.download = (this.form.name || "mackuper").replace(/[^A-Za-z0-9._-]+/g, "-") + ".age-key.txt";
          document.body.appendChild(link);
          link.click();
          link.remove();
          window.setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
          this.keyNotice = "Private key downloaded.";
        },
        async generateKey() {
          var result = await api("POST", "/api/encryption/identity");
          if (!result.ok) { this.error = result.data.error; return; }
          var form = this.form.encryption;
          form.identity = result.data.identity;
          form.generated = true;
          form.identity_saved = false;
          this.keyNotice = "";
          form.recipients = (form.recipients.trim() ? form.recipients.trim() + "\n" : "") + result.data.recipient;
        },
        isSSH() { return this.form.source_kind === "ssh"; },
        isDatabase() { return !!DATABASE_DEFAULTS[this.form.source_kind]; },
        isServer() { return this.isDatabase() && this.form.source_kind !== "sqlite"; },
        isPostgres() { return this.form.source_kind === "postgresql"; },
        isMariaDB() { return this.form.source_kind === "mariadb"; },
        takesPaths() { return this.form.source_kind === "local" || this.isSSH() || this.form.source_kind === "sqlite"; },
        takesExcludes() { return this.form.source_kind === "local" || this.isSSH(); },
        pathsLabel() { return this.form.source_kind === "sqlite" ? "Database files" : "Paths to back up"; },
        /* Another kind starts from that kind's defaults; back to the saved kind, its settings. */
        sourceKindChanged() {
          this.errors = {}; this.dbResult = null;
          var kind = this.form.source_kind;
          if (!DATABASE_DEFAULTS[kind]) return;
          var original = kind === this.form.saved_kind ? this.form.db.original : null;
          this.form.db = databaseForm(kind, original);
        },
        dbSecretHint() {
          return this.form.db.secrets.password === "set" ? "(set; leave blank to keep)" : "(if the server asks for one)";
        },
        usesKey() { return this.form.ssh.auth === "key"; },
        secretHint(name) {
          return this.form.ssh.secrets[name] === "set" ? "(set; leave blank to keep)" : "";
        },
        databasePayload() {
          var kind = this.form.source_kind, db = this.form.db;
          var source = Object.assign({}, kind === this.form.saved_kind ? db.original : {});
          delete source.secrets;
          this.dbSSHPayload(source);
          if (kind === "sqlite") return Object.assign(source, { paths: lines(this.form.paths) });
          source.host = db.host;
          source.username = db.username;
          source.password = db.password;
          var port = String(db.port || "").trim();
          if (port !== "") source.port = /^[0-9]+$/.test(port) ? parseInt(port, 10) : port;
          if (kind === "postgresql") {
            source.maintenance_database = db.maintenance_database;
            source.databases = lines(db.databases);
            source.include_globals = db.include_globals;
            source.dump_format = db.dump_format;
            source.schema_only = db.schema_only;
            source.exclude_tables = lines(db.exclude_tables);
            source.container = db.container;
          }
          if (kind === "mariadb") source.databases = lines(db.databases);
          return source;
        },
        /* The SSH host settings of a database source; blank secrets keep the stored ones. */
        dbSSHPayload(source) {
          var db = this.form.db;
          if (!db.ssh_use) { source.ssh_host = ""; return; }
          ["ssh_host", "ssh_username", "ssh_auth", "ssh_host_key", "ssh_password", "ssh_private_key", "ssh_passphrase"].forEach(function (name) {
            source[name] = db[name];
          });
          var port = String(db.ssh_port || "").trim();
          source.ssh_port = /^[0-9]+$/.test(port) ? parseInt(port, 10) : port;
        },
        dbSSHSecretHint(name) {
          return this.form.db.secrets[name] === "set" ? "(set; leave blank to keep)" : "";
        },
        /* The SSH host's key, shown to be trusted, through the SSH sources' own test. */
        async testDatabaseSSH() {
          var db = this.form.db;
          var port = String(db.ssh_port || "").trim();
          var probe = {
            host: db.ssh_host, port: /^[0-9]+$/.test(port) ? parseInt(port, 10) : port, username: db.ssh_username,
            auth: db.ssh_auth, password: db.ssh_password, private_key: db.ssh_private_key,
            passphrase: db.ssh_passphrase, host_key: db.ssh_host_key, paths: [],
          };
          this.sshBusy = true; this.sshResult = null; this.errors = {};
          var result = await api("POST", "/api/ssh/test", { source: probe });
          this.sshBusy = false;
          if (result.ok) this.sshResult = result.data;
          else this.sshResult = { message: result.data.error + (result.data.field ? " (" + result.data.field.replace("source.", "SSH ") + ")" : "") };
        },
        trustDatabaseKey() { this.form.db.ssh_host_key = this.sshResult.host_key; this.testDatabaseSSH(); },
        /* Each kind's "Test connection": /api/postgresql|mariadb|sqlite|redis/test. */
        async testDatabase() {
          var kind = this.form.source_kind;
          this.dbBusy = true; this.dbResult = null; this.errors = {};
          var result = await api("POST", "/api/" + kind + "/test", {
            source: this.databasePayload(), job_id: this.form.saved_kind === kind ? this.form.id : null,
          });
          this.dbBusy = false;
          if (result.ok) this.dbResult = result.data; else this.takeResult(result);
        },
        dbResultLines() {
          var r = this.dbResult;
          if (!r || !r.server_version) return [];
          var tool = this.isPostgres() ? "pg_dump: " + (r.pg_dump_version || "not found") : "Dump tool here: " + (r.dump_tool || "not found");
          var found = [(this.form.source_kind === "sqlite" ? "sqlite3: " : "Server: ") + r.server_version, tool];
          if (r.databases && r.databases.length) found.push((this.form.source_kind === "sqlite" ? "Files: " : "Databases: ") + r.databases.join(", "));
          return found;
        },
        sourcePayload() {
          if (this.isDatabase()) return this.databasePayload();
          if (this.isVolume()) return { volumes: lines(this.form.volumes), container_paths: lines(this.form.container_paths) };
          var source = { paths: lines(this.form.paths), excludes: lines(this.form.excludes) };
          if (!this.isSSH()) return source;
          var ssh = this.form.ssh;
          ["host", "username", "auth", "transfer", "host_key", "password", "private_key", "passphrase"].forEach(function (name) {
            source[name] = ssh[name];
          });
          // The API takes the port as a number; other text goes as typed, to be refused by name.
          var port = String(ssh.port || "").trim();
          if (port !== "") source.port = /^[0-9]+$/.test(port) ? parseInt(port, 10) : port;
          return source;
        },
        async testSSH() {
          this.sshBusy = true; this.sshResult = null; this.errors = {};
          var result = await api("POST", "/api/ssh/test", { source: this.sourcePayload(), job_id: this.form.id });
          this.sshBusy = false;
          if (result.ok) this.sshResult = result.data; else this.takeResult(result);
        },
        sshMessage() { return this.sshResult ? this.sshResult.message : ""; },
        sshFingerprint() {
          var r = this.sshResult;
          return r && r.fingerprint ? r.key_type + " " + r.fingerprint : "";
        },
        sshPaths() { return this.sshResult ? this.sshResult.paths : []; },
        pathText(item) { return (item.ok ? "ok  " : "FAIL ") + item.path + ": " + item.message; },
        canTrust() {
          var r = this.sshResult;
          return Boolean(r && r.host_key && (r.status === "untrusted" || r.status === "mismatch"));
        },
        trustKey() { this.form.ssh.host_key = this.sshResult.host_key; this.testSSH(); },
        trustedKeyText() { return "Trusted host key: " + this.form.ssh.host_key.split(" ")[0]; },
        async runNow(job) {
          var result = await api("POST", "/api/jobs/" + job.id + "/run");
          if (!result.ok) { this.error = result.data.error; return; }
          // A click while the job's backup is queued or running opens that one and says so.
          window.location.assign("/runs/" + result.data.run.id + (result.data.queued ? "" : "?existing=1"));
        },
        async toggleEnabled(job) {
          var result = await api("POST", "/api/jobs/" + job.id + "/enabled", { enabled: !job.enabled });
          if (result.ok) await this.load(); else this.error = result.data.error;
        },
        /* A modal <dialog>: it opens where the person is looking, over the list. */
        askDelete(job) { this.confirmDelete = job; this.deleteBackups = false; this.$refs.deleteDialog.showModal(); },
        keepJob() { this.confirmDelete = null; if (this.$refs.deleteDialog.open) this.$refs.deleteDialog.close(); },
        deleteTitle() { return this.confirmDelete ? "Delete the job “" + this.confirmDelete.name + "”?" : ""; },
        async deleteJob() {
          var body = { delete_backups: this.deleteBackups === true };
          var result = await api("DELETE", "/api/jobs/" + this.confirmDelete.id, body);
          this.keepJob();
          if (result.ok) {
            this.notice = result.data.backups_deleted
              ? "Job deleted, with its " + result.data.backups_deleted + " stored backup(s)."
              : "Job deleted; its stored backups were kept.";
            await this.load();
          }
          else this.error = result.data.error;
        },
        destinationNames(job) { return job.destinations.map(function (d) { return d.name; }).join(", "); },
        commandsText(job) {
          var hooks = job.hooks || {};
          var pre = hooks.pre && hooks.pre.command, post = hooks.post && hooks.post.command;
          if (pre && post) return "Runs commands before and after";
          if (pre) return "Runs a command before";
          return post ? "Runs a command after" : "";
        },
        scheduleText(job) {
          var words = this.info(job).schedule_text;
          return words || (job.schedule ? job.schedule : "manual only");
        },
      });
    });

    Alpine.data("historyPage", function () {
      var FILTERS = { kind: "kind", status: "status", jobId: "job_id", fromDate: "from_date", toDate: "to_date" };
      return Object.assign({}, helpers, {
        runs: [], total: 0, page: 1, perPage: 25, kind: "", status: "", jobId: "", fromDate: "", toDate: "",
        jobs: [], loaded: false, error: "",
        async init() {
          var self = this;
          this.readUrl();
          // Back and forward walk through the filters and pages chosen before.
          window.addEventListener("popstate", function () { self.readUrl(); self.load(); });
          var jobs = await api("GET", "/api/jobs");
          if (jobs.ok) this.jobs = jobs.data.jobs;
          await this.load();
        },
        /* The filters and page live in the address, so a reload or a shared link keeps them. */
        readUrl() {
          var params = new URLSearchParams(window.location.search), self = this;
          Object.keys(FILTERS).forEach(function (name) { self[name] = params.get(FILTERS[name]) || ""; });
          var page = parseInt(params.get("page") || "1", 10);
          this.page = page > 0 ? page : 1;
        },
        query() {
          var params = new URLSearchParams(), self = this;
          Object.keys(FILTERS).forEach(function (name) { if (self[name]) params.set(FILTERS[name], self[name]); });
          if (this.page > 1) params.set("page", String(this.page));
          return params;
        },
        writeUrl() {
          var search = this.query().toString();
          var url = window.location.pathname + (search ? "?" + search : "");
          if (url !== window.location.pathname + window.location.search) window.history.pushState(null, "", url);
        },
        async load() {
          var params = this.query();
          params.set("page", String(this.page));
          params.set("per_page", String(this.perPage));
          var result = await api("GET", "/api/runs?" + params.toString());
          if (result.ok) { this.runs = result.data.runs; this.total = result.data.total; this.error = ""; }
          else { this.runs = []; this.total = 0; this.error = result.data.error; }
          this.loaded = true;
        },
        filter() { this.page = 1; this.writeUrl(); this.load(); },
        hasFilters() { var self = this; return Object.keys(FILTERS).some(function (name) { return self[name]; }); },
        clearFilters() { var self = this; Object.keys(FILTERS).forEach(function (name) { self[name] = ""; }); this.filter(); },
        pages() { return Math.max(1, Math.ceil(this.total / this.perPage)); },
        hasPrevious() { return this.page > 1; },
        hasNext() { return this.page < this.pages(); },
        previous() { if (this.hasPrevious()) { this.page -= 1; this.writeUrl(); this.load(); } },
        next() { if (this.hasNext()) { this.page += 1; this.writeUrl(); this.load(); } },
        isEmpty() { return this.loaded && this.runs.length === 0; },
      });
    });

    Alpine.data("runPage", function (runId) {
      return Object.assign({}, helpers, {
        runId: runId, run: null, log: [], lastLine: 0, timer: null, error: "", expected: null,
        async init() {
          await this.loadEstimate();
          await this.refresh();
          var self = this;
          this.timer = setInterval(function () { self.refresh(); }, 1000);
        },
        destroy() { clearInterval(this.timer); },
        async refresh() {
          var run = await api("GET", "/api/runs/" + this.runId);
          if (!run.ok) { this.error = run.data.error; clearInterval(this.timer); return; }
          this.run = run.data.run;
          // A first run's source is counted while it runs: ask until the total is known.
          if (this.expected === null && this.isRunning()) await this.loadEstimate();
          var log = await api("GET", "/api/runs/" + this.runId + "/log?after=" + this.lastLine);
          if (log.ok && log.data.lines.length) {
            this.log = this.log.concat(log.data.lines);
            this.lastLine = log.data.lines[log.data.lines.length - 1].id;
          }
          if (this.isFinal()) clearInterval(this.timer);
        },
        isFinal() { return this.run && ["queued", "running"].indexOf(this.run.status) === -1; },
        isActive() { return this.run && !this.isFinal(); },
        isRunning() { return this.run && this.run.status === "running"; },
        percent() { return runPercent(this.run, this.expected); },
        hasPercent() { return this.percent() !== null; },
        async loadEstimate() {
          var estimate = await api("GET", "/api/ui/runs/" + this.runId + "/estimate");
          if (estimate.ok) this.expected = estimate.data.expected_bytes;
        },
        barStyle() { return { width: (this.hasPercent() ? this.percent() : UNKNOWN_WIDTH) + "%" }; },
        queueText() {
          var lane = this.run.kind === "backup" ? "backups" : "restores and verifications";
          var place = this.run.queue_position === 1 ? "next to start" : "number " + this.run.queue_position + " in line";
          return "Queued: " + place + " among the " + lane + ".";
        },
        workerText() {
          var needs = this.run.worker_label ? "needs a worker labelled " + this.run.worker_label : "";
          return [this.run.worker_id || "", needs].filter(Boolean).join(" · ");
        },
        async cancel() {
          var result = await api("POST", "/api/runs/" + this.runId + "/cancel");
          if (!result.ok) this.error = result.data.error;
          await this.refresh();
        },
        /* What fits the run's kind: a verify has no archive size of its own, a restore
           has a target and restored files, a backup its archive. */
        facts() {
          var run = this.run, summary = run.summary || {}, results = summary.results || {};
          var facts = [];
          function add(label, value, wide) { facts.push({ label: label, value: value, wide: !!wide }); }
          /* The archive's hash, by the algorithm it was made with: BLAKE3 since 2026-12-02
             (b3sum checks it), SHA-256 before (sha256sum). */
          var hash = run.blake3 ? { name: "BLAKE3", tool: "b3sum", value: run.blake3 }
            : (run.sha256 ? { name: "SHA-256", tool: "sha256sum", value: run.sha256 } : null);
          function addHash() { add(hash ? hash.name + " (" + hash.tool + ")" : "Hash", hash ? hash.value : "–", true); }
          if (run.kind === "verify") {
            add("Archive verified", run.archive_name || "–");
            add("Archive read", formatBytes(run.bytes_read));
            add("Check", summary.deep ? "deep: every entry opened and hashed" : "the archive's " + (hash ? hash.name : "hash"));
            if (summary.deep) add("Files checked", String(results.files_checked === undefined ? run.files_done : results.files_checked));
            addHash();
          } else if (run.kind === "restore") {
            add("From archive", run.archive_name || "–");
            add("Into", summary.target || "–");
            add(summary.dry_run ? "Would restore" : "Files restored", String(run.files_done) + " files, " + formatBytes(run.bytes_written));
            add("Existing files", summary.policy || "–");
            add("Selection", summary.selected_paths ? summary.selected_paths + " path(s)" : "everything");
            add("Archive read", formatBytes(run.bytes_read));
            if (results.skipped || results.renamed || results.refused || results.failed) {
              add("Not restored", (results.skipped || 0) + " kept, " + (results.renamed || 0) + " renamed, " + (results.refused || 0) + " refused, " + (results.failed || 0) + " failed");
            }
          } else {
            add("Files", String(run.files_done));
            add("Read", formatBytes(run.bytes_read));
            add("Archive size", formatBytes(run.bytes_written));
            add("Archive", run.archive_name || "–");
            addHash();
          }
          return facts;
        },
        existingNotice() {
          if (new URLSearchParams(window.location.search).get("existing") !== "1" || !this.run) return "";
          return "A backup of this job was already " + (this.isActive() ? this.run.status : "on its way") + ": this is it; Run now did not queue a second one.";
        },
        levelClass(line) { return line.level === "error" ? "text-red-600 dark:text-red-400" : (line.level === "warning" ? "text-amber-600 dark:text-amber-400" : ""); },
      });
    });

    Alpine.data("settingsPage", function () {
      return Object.assign(formState(), helpers, hostKeyState("form"), {
        destinations: [], about: null, form: null, password: { current_password: "", new_password: "" },
        passwordMessage: "", passwordError: "", passwordConfirm: "", confirmDelete: null,
        tokens: [], tokenName: "", tokenExpiry: "", newToken: "", tokenError: "",
        async init() { await this.load(); },
        async loadTokens() {
          var tokens = await api("GET", "/api/tokens");
          if (tokens.ok) this.tokens = tokens.data.tokens;
        },
        async createToken() {
          var days = this.tokenExpiry ? parseInt(this.tokenExpiry, 10) : null;
          var result = await api("POST", "/api/tokens", { name: this.tokenName, expires_in_days: days });
          this.tokenError = result.ok ? "" : result.data.error;
          this.newToken = result.ok ? result.data.token : "";
          if (result.ok) { this.tokenName = ""; this.tokenExpiry = ""; await this.loadTokens(); }
        },
        tokenExpires(token) {
          if (!token.expires_at) return "never";
          return token.expired ? "expired " + this.ago(token.expires_at) : this.ago(token.expires_at);
        },
        async revokeToken(token) {
          var result = await api("DELETE", "/api/tokens/" + token.id);
          this.tokenError = result.ok ? "" : result.data.error;
          this.newToken = "";
          await this.loadTokens();
        },
        async load() {
          await this.loadTokens();
          var destinations = await api("GET", "/api/destinations");
          if (destinations.ok) this.destinations = destinations.data.destinations;
          var about = await api("GET", "/api/about");
          if (about.ok) this.about = about.data;
        },
        startCreate() { this.form = emptyDestination(); this.errors = {}; this.error = ""; this.notice = ""; },
        startEdit(destination) {
          this.form = destinationForm(destination);
          this.errors = {}; this.error = ""; this.notice = "";
        },
        cancelEdit() { this.form = null; this.errors = {}; this.error = ""; },
        isKind(kind) { return this.form && this.form.kind === kind; },
        secretState(name) { return this.form && this.form.secrets ? this.form.secrets[name] : "not set"; },
        async test() {
          this.busy = true; this.notice = "";
          var result = await api("POST", "/api/destinations/test", destinationPayload(this.form));
          this.busy = false;
          if (this.takeResult(result)) this.notice = result.data.message;
        },
        async save() {
          this.busy = true; this.notice = "";
          var result = this.form.id
            ? await api("PUT", "/api/destinations/" + this.form.id, destinationPayload(this.form))
            : await api("POST", "/api/destinations", destinationPayload(this.form));
          this.busy = false;
          if (this.takeResult(result)) { this.form = null; this.notice = "Destination saved."; await this.load(); }
        },
        askDelete(destination) { this.confirmDelete = destination; },
        keepDestination() { this.confirmDelete = null; },
        async deleteDestination() {
          var result = await api("DELETE", "/api/destinations/" + this.confirmDelete.id);
          this.confirmDelete = null;
          if (result.ok) await this.load(); else this.error = result.data.error;
        },
        async changePassword() {
          this.passwordMessage = "";
          if (this.password.new_password !== this.passwordConfirm) {
            this.passwordError = "The two new passwords differ: type the same one twice.";
            return;
          }
          var result = await api("POST", "/api/account/password", this.password);
          this.passwordError = result.ok ? "" : result.data.error;
          this.passwordMessage = result.ok ? "Password changed." : "";
          if (result.ok) { this.password = { current_password: "", new_password: "" }; this.passwordConfirm = ""; }
        },
      });
    });
  });
})();
