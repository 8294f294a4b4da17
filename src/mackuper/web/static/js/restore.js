/* The Restore tab (CSP build rules: see frontend/README.md). Registered on alpine:init. */
(function () {
  "use strict";

  /* One fetch helper for every page (static/js/app.js): CSRF header, plain errors. */
  var api = window.Mackuper.api;

  var formatBytes = window.Mackuper.formatBytes;

  var PER_PAGE = 20;

  function emptyForm() {
    return {
      kind: "local", path: "", host: "", port: "22", username: "", host_key_fingerprint: "",
      password: "", private_key: "", policy: "skip", dry_run: false, same_as_source: false,
      decryption: "", volume_source: "", volume_into: "", volume_existing: false, volume_confirm: "",
    };
  }

  function emptyDatabaseForm() {
    return {
      database: "", into: "", same_as_source: true, host: "", port: "", username: "",
      password: "", existing: false, confirm: "",
    };
  }

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("restorePage", function () {
      return {
        jobs: [], backups: [], destinations: [], jobId: "", loaded: false,
        selected: null, folder: "", entries: [], query: "", searching: false, picked: [],
        form: emptyForm(), errors: {}, error: "", notice: "", busy: false,
        sealed: false, keyInput: "", keyError: "", browseKey: "",
        databases: [], dumps: [], dbForm: emptyDatabaseForm(), dbErrors: {}, dbError: "",
        volumes: [], volumeState: null,
        page: 1, total: 0, perPage: PER_PAGE,
        importId: "", importReport: "", scheduleCron: "", scheduleDeep: false, scheduleNotice: "",

        async init() {
          var params = new URLSearchParams(window.location.search);
          this.jobId = params.get("job_id") || "";
          var jobs = await api("GET", "/api/jobs");
          if (jobs.ok) this.jobs = jobs.data.jobs;
          var destinations = await api("GET", "/api/destinations");
          if (destinations.ok) {
            this.destinations = destinations.data.destinations;
            if (this.destinations.length) this.importId = String(this.destinations[0].id);
          }
          var schedule = await api("GET", "/api/verify/schedule");
          if (schedule.ok) { this.scheduleCron = schedule.data.schedule.cron || ""; this.scheduleDeep = schedule.data.schedule.deep; }
          await this.loadBackups();
        },
        async saveSchedule() {
          var result = await api("PUT", "/api/verify/schedule", { cron: this.scheduleCron, deep: this.scheduleDeep });
          this.scheduleNotice = result.ok ? (this.scheduleCron ? "Verification schedule saved." : "Scheduled verification is off.") : result.data.error;
        },
        selectedEncrypted() { return !!(this.selected && this.selected.encrypted); },
        isS3(backup) { return backup.destination_kind === "s3"; },
        async directLink(backup) {
          var result = await api("GET", "/api/backups/" + backup.id + "/download-url");
          if (result.ok) window.location.assign(result.data.url); else this.error = result.data.error;
        },
        showSshFields() { return this.form.kind === "ssh" && !this.form.same_as_source; },
        async loadBackups() {
          this.page = 1;
          await this.loadPage();
        },
        /* One page of backups: all jobs grouped by job, one job newest first. */
        async loadPage() {
          var query = "?per_page=" + this.perPage + "&page=" + this.page + "&order=" + (this.jobId ? "newest" : "job");
          if (this.jobId) query += "&job_id=" + encodeURIComponent(this.jobId);
          var result = await api("GET", "/api/backups" + query);
          this.loaded = true;
          if (result.ok) { this.backups = result.data.backups; this.total = result.data.total; this.error = ""; } else { this.error = result.data.error; }
        },
        pages() { return Math.max(1, Math.ceil(this.total / this.perPage)); },
        pageText() { return "Page " + this.page + " of " + this.pages() + " · " + this.total + " backups"; },
        async previousPage() { if (this.page > 1) { this.page -= 1; await this.loadPage(); } },
        async nextPage() { if (this.page < this.pages()) { this.page += 1; await this.loadPage(); } },
        grouped() { return !this.jobId; },
        groups() {
          var groups = [];
          this.backups.forEach(function (backup) {
            var key = String(backup.job_id) + ":" + backup.job_name;
            var last = groups[groups.length - 1];
            if (!last || last.key !== key) { last = { key: key, name: backup.job_name, backups: [] }; groups.push(last); }
            last.backups.push(backup);
          });
          return groups;
        },
        groupTitle(group) { return group.name + " · " + group.backups.length + (group.backups.length === 1 ? " backup" : " backups") + " on this page"; },
        isEmpty() { return this.loaded && this.backups.length === 0; },
        bytes: formatBytes,
        when: function (iso) { return iso ? new Date(iso).toLocaleString() : ""; },
        verifiedText(backup) {
          if (!backup.verified_at) return "never";
          return (backup.verify_status === "ok" ? "ok, " : "FAILED, ") + new Date(backup.verified_at).toLocaleString();
        },
        downloadUrl(backup) { return "/api/backups/" + backup.id + "/download"; },
        downloadLabel(backup) { return "Download " + backup.name; },
        extractUrl(entry) {
          return "/api/backups/" + this.selected.id + "/extract?path=" + encodeURIComponent(entry.path);
        },
        /* A posted form, not fetch: the browser streams the file to disk as it comes,
           whatever its size, and the key never appears in a URL. */
        downloadWithKey(entry) {
          var form = document.createElement("form");
          form.method = "POST";
          form.action = "/api/backups/" + this.selected.id + "/extract";
          var token = document.querySelector('meta[name="csrf-token"]');
          var fields = { csrf_token: token ? token.content : "", path: entry.path, identity: this.browseKey };
          Object.keys(fields).forEach(function (name) {
            var input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = fields[name];
            form.appendChild(input);
          });
          document.body.appendChild(form);
          form.submit();
          form.remove();
        },
        selectedTitle() { return this.selected ? this.selected.job_name + " · " + this.when(this.selected.created_at) : ""; },
        restoreTitle() {
          if (this.picked.length) return "Restore " + this.picked.length + " selected item(s)";
          return this.searching ? "Restore from the search results" : "Restore everything in this backup";
        },
        async clearSearch() { this.query = ""; this.notice = ""; await this.openFolder(this.folder); },
        originalJob() {
          var id = this.selected && this.selected.job_id;
          return this.jobs.filter(function (job) { return job.id === id; })[0] || null;
        },
        originalText() {
          var job = this.originalJob();
          if (!job) return "The job of this backup is gone: choose a directory instead.";
          var where = job.source_kind === "ssh" ? "on " + job.source.host + " over SSH" : "on this host";
          return "Files go back to the paths they were backed up from, " + where + ".";
        },
        async browse(backup) {
          this.selected = backup; this.picked = []; this.query = ""; this.form = emptyForm(); this.errors = {};
          this.sealed = false; this.keyInput = ""; this.keyError = ""; this.browseKey = "";
          this.databases = []; this.dumps = []; this.dbForm = emptyDatabaseForm(); this.dbErrors = {}; this.dbError = "";
          this.volumes = []; this.volumeState = null;
          await this.openFolder("");
        },
        /* The file list of `path` or the matches of `query`. A key typed for this backup
           goes in a POST body with every request and lives only in this page's memory. */
        async tree(path, query) {
          var url = "/api/backups/" + this.selected.id + "/tree";
          if (this.browseKey) {
            return api("POST", url, { path: path, q: query, decryption: { identity: this.browseKey } });
          }
          return api("GET", url + "?" + (query ? "q=" + encodeURIComponent(query) : "path=" + encodeURIComponent(path)));
        },
        async openFolder(path) {
          this.folder = path; this.searching = false;
          var result = await this.tree(path, "");
          if (result.ok) { this.entries = result.data.entries; this.sealed = result.data.sealed; this.error = ""; this.takeDatabases(result.data); } else { this.entries = []; this.error = result.data.error; }
        },
        async openWithKey() {
          if (!this.keyInput) { this.keyError = "Enter the private key or passphrase of this backup."; return; }
          this.busy = true; this.browseKey = this.keyInput;
          var result = await this.tree("", "");
          this.busy = false;
          if (!result.ok) {
            this.browseKey = "";
            this.keyError = (result.data.fields && result.data.fields.decryption) || result.data.error;
            return;
          }
          this.keyError = ""; this.keyInput = ""; this.error = ""; this.folder = ""; this.searching = false;
          this.entries = result.data.entries; this.sealed = result.data.sealed;
          this.takeDatabases(result.data);
          this.form.decryption = this.browseKey;
        },
        async runSearch() {
          if (!this.query) { await this.openFolder(this.folder); return; }
          var result = await this.tree("", this.query);
          this.searching = true;
          if (result.ok) {
            this.entries = result.data.entries;
            this.notice = result.data.truncated ? "Only the first matches are shown; refine the search." : "";
          } else { this.error = result.data.error; }
        },
        decryptionHint() {
          return this.selected && this.selected.key_stored ? "(empty: the one the job stores)" : "(required: the job stores no key)";
        },
        isoTime(seconds) { return seconds ? new Date(seconds * 1000).toISOString() : ""; },
        mtimeText(seconds) { return seconds ? "modified " + new Date(seconds * 1000).toLocaleString() : ""; },
        crumbs() {
          var parts = this.folder ? this.folder.split("/") : [];
          return parts.map(function (name, index) { return { name: name, path: parts.slice(0, index + 1).join("/") }; });
        },
        isPicked(entry) { return this.picked.indexOf(entry.path) !== -1; },
        togglePick(entry) {
          var index = this.picked.indexOf(entry.path);
          if (index === -1) this.picked.push(entry.path); else this.picked.splice(index, 1);
        },
        fieldError(name) { return this.errors[name] || ""; },
        takeVolumes(data) {
          this.volumes = data.volumes || [];
          if (this.volumes.length && this.volumes.indexOf(this.form.volume_source) === -1) {
            this.form.volume_source = this.volumes[0];
            this.form.volume_into = this.volumes[0] + "-restored";
          }
        },
        isVolume() { return this.form.kind === "volume"; },
        showFileOptions() { return this.form.kind !== "volume"; },
        volumeChanged() { this.volumeState = null; this.form.volume_confirm = ""; },
        /* What the chosen volume holds now: the confirmation names what is overwritten. */
        async checkVolume() {
          var form = this.form;
          var body = { artifact_id: this.selected.id, source: form.volume_source, volume: form.volume_into, paths: this.picked };
          if (this.browseKey || form.decryption) body.decryption = { identity: this.browseKey || form.decryption };
          this.busy = true;
          var result = await api("POST", "/api/restore/volume/check", body);
          this.busy = false;
          var fields = (result.data && result.data.fields) || {};
          this.errors = {};
          Object.keys(fields).forEach(function (name) { this.errors[name === "volume" ? "target.volume" : name === "source" ? "target.source" : name] = fields[name]; }, this);
          if (!result.ok) { this.volumeState = null; this.error = result.data.error; return false; }
          this.error = ""; this.volumeState = result.data;
          return true;
        },
        volumeChecked() { return !!(this.volumeState && this.volumeState.volume === this.form.volume_into); },
        volumeUsers() {
          var state = this.volumeState;
          if (!state || !state.exists) return "";
          if (!state.containers.length) return "No container uses it.";
          return "Used by " + state.containers.map(function (item) { return item.name + " (" + item.status + ")"; }).join(", ") + ".";
        },
        volumeSummary() {
          var state = this.volumeState;
          if (!state) return "";
          if (!state.exists) return this.form.volume_existing ? "There is no volume " + state.volume + ": untick \"existing\" to make it." : "Volume " + state.volume + " does not exist yet: the restore makes it.";
          if (state.running.length) return "Stop " + state.running.join(", ") + " first: a volume in use by a running container is not written to.";
          if (!this.form.volume_existing) return "Volume " + state.volume + " exists already: tick \"existing\" to restore into it.";
          if (state.empty) return "Volume " + state.volume + " is empty.";
          return "";
        },
        volumeNeedsConfirm() {
          var state = this.volumeState;
          return !!(this.volumeChecked() && state.exists && !state.empty && !state.running.length && this.form.volume_existing);
        },
        overwrittenText() {
          var state = this.volumeState;
          if (!state) return "";
          var names = state.overwritten.length ? state.overwritten.join(", ") : "none of its top-level names (the backup's are " + state.writes.slice(0, 10).join(", ") + ")";
          return "Volume " + state.volume + " holds files. The backup's files, links and folders replace those at the same paths, which overwrites: " + names + ". Everything else in the volume stays.";
        },
        async startVolumeRestore() {
          var form = this.form;
          if (form.volume_existing && !this.volumeChecked()) {
            if (!(await this.checkVolume())) return;
            if (this.volumeNeedsConfirm() || this.volumeState.running.length || !this.volumeState.exists) return;
          }
          var replace = this.volumeNeedsConfirm();
          if (replace && form.volume_confirm !== form.volume_into) {
            this.errors = { "target.confirm": "Type " + form.volume_into + " to confirm that its files at these paths are replaced." };
            return;
          }
          var target = { source: form.volume_source, volume: form.volume_into, create: !form.volume_existing, replace: replace, confirm: replace ? form.volume_confirm : "" };
          var body = { artifact_id: this.selected.id, paths: this.picked, target: target };
          if (this.browseKey || form.decryption) body.decryption = { identity: this.browseKey || form.decryption };
          this.busy = true;
          var result = await api("POST", "/api/restore/volume", body);
          this.busy = false;
          this.errors = (result.data && result.data.fields) || {};
          if (!result.ok) {
            this.error = result.data.error;
            if (this.errors["target.replace"]) await this.checkVolume();
            return;
          }
          window.location.assign("/runs/" + result.data.run.id);
        },
        async startRestore() {
          if (this.isVolume()) { await this.startVolumeRestore(); return; }
          var form = this.form;
          var target = { kind: form.kind, path: form.path };
          if (form.kind === "original") {
            target = { kind: "original" };
          } else if (form.kind === "ssh" && form.same_as_source) {
            target.same_as_source = true;
          } else if (form.kind === "ssh") {
            target.host = form.host; target.port = parseInt(form.port, 10) || 22; target.username = form.username;
            target.host_key_fingerprint = form.host_key_fingerprint;
            if (form.password) target.password = form.password;
            if (form.private_key) target.private_key = form.private_key;
          }
          this.busy = true;
          var body = { artifact_id: this.selected.id, paths: this.picked, policy: form.policy, dry_run: form.dry_run, target: target };
          if (form.decryption) body.decryption = { identity: form.decryption };
          var result = await api("POST", "/api/restore", body);
          this.busy = false;
          this.errors = (result.data && result.data.fields) || {};
          if (!result.ok) { this.error = result.data.error; return; }
          window.location.assign("/runs/" + result.data.run.id);
        },
        takeDatabases(data) {
          this.takeVolumes(data);
          this.databases = data.databases || [];
          this.dumps = data.dumps || [];
          if (this.databases.length && this.databases.indexOf(this.dbForm.database) === -1) {
            // A database rather than the roles and tablespaces ("(globals)") by default.
            var real = this.databases.filter(function (name) { return name.charAt(0) !== "("; });
            this.dbForm.database = real.length ? real[0] : this.databases[0];
            this.dbForm.into = real.length ? real[0] + "_restored" : "";
          }
        },
        dumpKind() {
          var name = this.dbForm.database;
          var dump = this.dumps.filter(function (item) { return item.database === name; })[0];
          return dump ? dump.kind : "";
        },
        /* Mackuper restores PostgreSQL, MariaDB (one database's dump) and SQLite; the rest is downloaded. */
        dumpRestorable() {
          var kind = this.dumpKind();
          if (kind === "mariadb") return this.dbForm.database !== "(all)";
          return kind === "postgresql" || kind === "sqlite";
        },
        dumpHint() {
          var kind = this.dumpKind();
          if (kind === "redis") return "A Redis snapshot is loaded by a server when it starts, so it is not restored into a running one: download it, stop Redis, put the file where its dir and dbfilename point, and start it.";
          if (kind === "mariadb" && this.dbForm.database === "(all)") return "The whole-server dump restores every database under its own name: download it and feed it to mariadb.";
          if (kind === "mariadb") return "The dump is fed to the mariadb client straight from the stored archive, into a new database unless you choose an existing one (its tables and views are replaced).";
          if (kind === "sqlite") return "The dump is restored into a new file beside the target, which then becomes the target: a new file, or, confirmed, the content of an existing one.";
          return "The dump is fed to pg_restore (or psql) straight from the stored archive, into a new database unless you choose an existing one.";
        },
        dumpUrl() {
          return this.selected ? "/api/backups/" + this.selected.id + "/dump?database=" + encodeURIComponent(this.dbForm.database) : "#";
        },
        /* As for files: a posted form streams to disk and keeps the key out of the URL. */
        downloadDumpWithKey() {
          var form = document.createElement("form");
          form.method = "POST";
          form.action = "/api/backups/" + this.selected.id + "/dump";
          var token = document.querySelector('meta[name="csrf-token"]');
          var fields = { csrf_token: token ? token.content : "", database: this.dbForm.database, identity: this.browseKey };
          Object.keys(fields).forEach(function (name) {
            var input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = fields[name];
            form.appendChild(input);
          });
          document.body.appendChild(form);
          form.submit();
          form.remove();
        },
        dbFieldError(name) { return this.dbErrors[name] || this.dbErrors["target." + name] || ""; },
        /* A dump goes into a new database unless "existing" is ticked and its name typed again. */
        async startDatabaseRestore() {
          var form = this.dbForm;
          var target = { same_as_source: form.same_as_source, database: form.into, existing: form.existing, confirm: form.confirm };
          if (this.dumpKind() === "sqlite") target.same_as_source = true;
          else if (!form.same_as_source) {
            target.host = form.host; target.username = form.username; target.password = form.password;
            var port = String(form.port || "").trim();  // empty: the kind's usual port
            if (port !== "") target.port = /^[0-9]+$/.test(port) ? parseInt(port, 10) : port;
          }
          var body = { artifact_id: this.selected.id, database: form.database, target: target };
          if (this.browseKey || this.form.decryption) body.decryption = { identity: this.browseKey || this.form.decryption };
          this.busy = true;
          var result = await api("POST", "/api/restore/database", body);
          this.busy = false;
          this.dbErrors = (result.data && result.data.fields) || {};
          if (!result.ok) { this.dbError = result.data.error; return; }
          window.location.assign("/runs/" + result.data.run.id);
        },
        async startVerify(backup, deep) {
          var result = await api("POST", "/api/verify", { artifact_id: backup.id, deep: deep });
          if (!result.ok) { this.error = result.data.error; return; }
          window.location.assign("/runs/" + result.data.run.id);
        },
        async verify(backup) { await this.startVerify(backup, false); },
        async verifyDeep(backup) { await this.startVerify(backup, true); },
        async importBackups() {
          this.busy = true;
          var result = await api("POST", "/api/import", { destination_id: parseInt(this.importId, 10) });
          this.busy = false;
          if (!result.ok) { this.error = result.data.error; return; }
          var report = result.data.report;
          this.importReport = "Found " + report.manifests + " manifest(s): imported " + report.imported +
            ", already known " + report.already_known + (report.problems.length ? ", problems: " + report.problems.join("; ") : "") +
            (report.chain_points ? ", " + report.chain_points + " point(s) of incremental chains linked" : "") +
            (report.broken_chains && report.broken_chains.length ? ", broken chains: " + report.broken_chains.join("; ") : "") + ".";
          await this.loadBackups();
        },
      };
    });
  });
})();
