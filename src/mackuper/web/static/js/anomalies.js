/* Jobs page: backups that look like ransomware (issue 19). Each awaits a person's
   acknowledgement; until then retention deletes nothing for that job. Loaded before Alpine. */
(function () {
  "use strict";

  var call = window.Mackuper.api;

  document.addEventListener("alpine:init", function () {
    window.Alpine.data("anomalyNotices", function () {
      return {
        items: [],
        error: "",
        async init() { await this.load(); },
        async load() {
          var answer = await call("GET", "/api/jobs/anomalies");
          if (!answer.ok) { this.error = answer.data.error; return; }
          this.items = answer.data.anomalies.map(function (item) {
            return Object.assign({ link: "/runs/" + item.run_id }, item);
          });
        },
        async acknowledge(item) {
          var answer = await call("POST", "/api/jobs/" + item.job_id + "/anomaly/acknowledge");
          if (!answer.ok) { this.error = answer.data.error; return; }
          this.error = "";
          await this.load();
        }
      };
    });
  });
})();
