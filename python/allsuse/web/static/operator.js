// The operator page's script: approvals without a page reload, and live alerts over a WebSocket (pushed, never
// polled). Hand-written, no build step, no network beyond this server.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]');
  const token = csrf ? csrf.getAttribute("content") : "";

  function approvals() {
    document.querySelectorAll("form.approval").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        const button = event.submitter || form.querySelector("button");
        const row = form.closest("tr");
        const status = row ? row.querySelector(".status") : null;
        form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
        fetch(button.getAttribute("formaction") || form.action, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRF-Token": token, "Accept": "application/json" },
          body: new FormData(form),
        }).then(function (reply) {
          return reply.json().then(function (body) { return { ok: reply.ok, body: body }; });
        }).then(function (answer) {
          if (!status) { return; }
          if (answer.ok) {
            status.textContent = answer.body.approval_status;
            status.className = "status status-" + answer.body.approval_status;
            form.remove();
          } else {
            status.textContent = answer.body.error || "failed";
            status.className = "status error";
            form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
          }
        }).catch(function (error) {
          if (status) { status.textContent = String(error); status.className = "status error"; }
          form.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
        });
      });
    });
  }

  function alertItem(alert) {
    const item = document.createElement("li");
    item.className = "sev-" + alert.severity;
    item.dataset.alertId = alert.alert_id;
    item.textContent = alert.at + " " + alert.severity + " " + alert.code + " " +
      (alert.portfolio_id || "") + (alert.account_id ? " " + alert.account_id : "") + ": " + alert.message +
      (alert.count > 1 ? " (x" + alert.count + ")" : "") + " [" + alert.status + "]";
    return item;
  }

  let retry = 2000;

  function liveAlerts() {
    const list = document.getElementById("alerts");
    if (!list) { return; }
    const portfolio = document.body.dataset.portfolio;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = scheme + "//" + location.host + "/ws/alerts" +
      (portfolio ? "?portfolio_id=" + encodeURIComponent(portfolio) : "");
    const socket = new WebSocket(url);
    socket.addEventListener("open", function () {
      retry = 2000;
      document.body.dataset.alerts = "live";
    });
    socket.addEventListener("message", function (event) {
      const alert = JSON.parse(event.data);
      const empty = document.getElementById("no-alerts");
      if (empty) { empty.remove(); }
      const known = list.querySelector('[data-alert-id="' + CSS.escape(alert.alert_id) + '"]');
      if (known) { known.replaceWith(alertItem(alert)); } else { list.prepend(alertItem(alert)); }
    });
    socket.addEventListener("close", function (event) {
      document.body.dataset.alerts = "off";
      if (event.code === 1008) {  // signed out, expired or revoked: back to the sign-in form
        location.assign("/login?next=" + encodeURIComponent(location.pathname));
        return;
      }
      setTimeout(liveAlerts, retry);  // the server restarted: reconnect, waiting longer each time (up to 30 s)
      retry = Math.min(retry * 2, 30000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    approvals();
    liveAlerts();
  });
})();
