// Staff console behaviour: confirmations, the self-refreshing queues overview, the rule editor's
// live validation and dry-run, and drag-and-drop rule ordering. Everything the server sends back
// as data is shown with textContent; only server-rendered (escaped) HTML fragments use innerHTML.
"use strict";

(function () {
  const csrfToken = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };

  const el = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  };

  const post = (url, body, json) => {
    const headers = { "X-CSRFToken": csrfToken(), Accept: "application/json" };
    if (json) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: headers,
      body: json ? JSON.stringify(body) : body,
    });
  };

  // -- confirmations --------------------------------------------------------------------------
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // -- queues overview: refresh the table body in place --------------------------------------
  const overview = document.getElementById("queue-overview");
  if (overview) {
    const url = overview.getAttribute("data-refresh-url");
    const seconds = Math.max(1, parseInt(overview.getAttribute("data-refresh-seconds"), 10) || 15);
    const rows = document.getElementById("queue-rows");
    const stamp = document.getElementById("refreshed-at");
    const refresh = async () => {
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
        if (response.redirected || !response.ok) {
          if (stamp) stamp.textContent = "stopped (log in again)";
          return;
        }
        rows.innerHTML = await response.text();
        const totals = rows.querySelector("tr.totals");
        if (stamp && totals) stamp.textContent = (totals.getAttribute("data-generated-at") || "").slice(11, 19);
        overview.setAttribute("data-refreshed", String(Date.now()));
      } catch (error) {
        if (stamp) stamp.textContent = "offline, retrying";
      }
      window.setTimeout(refresh, seconds * 1000);
    };
    window.setTimeout(refresh, seconds * 1000);
  }

  // -- rule editor: live validation ----------------------------------------------------------
  const ruleForm = document.getElementById("rule-form");
  if (ruleForm) {
    const box = document.getElementById("validation");
    let timer = null;
    let sequence = 0;
    const show = (data) => {
      box.replaceChildren();
      if (data.valid) {
        box.appendChild(el("p", "✓ Valid" + (data.position !== undefined ? " (position " + data.position + ")" : ""), "valid"));
        return;
      }
      box.appendChild(el("p", "✗ Not valid yet:", "invalid"));
      const list = el("ul", null, "errors");
      for (const error of data.errors || []) {
        const item = el("li");
        item.appendChild(el("code", error.field || error.path));
        item.appendChild(document.createTextNode(" " + error.message));
        list.appendChild(item);
      }
      box.appendChild(list);
    };
    const check = async () => {
      const mine = ++sequence;
      box.setAttribute("aria-busy", "true");
      try {
        const response = await post(ruleForm.getAttribute("data-check-url"), new FormData(ruleForm), false);
        const data = await response.json();
        if (mine === sequence) show(data);
      } catch (error) {
        if (mine === sequence) show({ valid: false, errors: [{ path: "", message: "could not check: " + error }] });
      } finally {
        if (mine === sequence) box.removeAttribute("aria-busy");
      }
    };
    const soon = () => {
      window.clearTimeout(timer);
      timer = window.setTimeout(check, 300);
    };
    ruleForm.addEventListener("input", soon);
    ruleForm.addEventListener("change", soon);
    check();

    // -- dry-run -------------------------------------------------------------------------------
    const dryForm = document.getElementById("dry-run-form");
    const result = document.getElementById("dry-run-result");
    const describe = (label, explained) => {
      const d = explained.decision;
      const p = el("p");
      p.appendChild(el("strong", label + ": "));
      p.appendChild(document.createTextNode(
        "queue " + d.queue + ", priority " + d.priority + ", rule " + d.matched_rule +
        ", SLA " + d.sla_policy + (d.sla ? " due " + d.sla.due_at : "")));
      p.setAttribute("data-queue", d.queue);
      return p;
    };
    dryForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = new FormData(ruleForm);
      for (const [name, value] of new FormData(dryForm).entries()) body.append(name, value);
      result.replaceChildren(el("p", "Routing…", "muted"));
      try {
        const response = await post(ruleForm.getAttribute("data-dry-run-url"), body, false);
        const data = await response.json();
        result.replaceChildren();
        if (!response.ok) {
          result.appendChild(el("p", data.error || "dry-run failed", "invalid"));
          for (const error of data.errors || []) result.appendChild(el("p", (error.field || error.path) + ": " + error.message, "invalid"));
          return;
        }
        const verdict = data.candidate_matched
          ? "This rule would route the sample."
          : "This rule would not route the sample (" + data.candidate.decision.matched_rule + " matches first or it does not match).";
        result.appendChild(el("p", verdict, data.candidate_matched ? "valid" : "muted"));
        result.appendChild(describe("With this rule", data.candidate));
        result.appendChild(describe("Rules in force", data.in_force));
        result.appendChild(el("p", data.changed ? "The decision changes." : "The decision does not change.", "muted"));
        const table = el("table", null, "grid small trace");
        const head = el("tr");
        for (const title of ["Rule", "Outcome", "Why not"]) head.appendChild(el("th", title));
        table.appendChild(head);
        for (const step of data.candidate.decision.trace) {
          const row = el("tr", null, step.outcome);
          row.appendChild(el("td", step.rule_id));
          row.appendChild(el("td", step.outcome));
          row.appendChild(el("td", step.failed_condition || ""));
          table.appendChild(row);
        }
        result.appendChild(table);
      } catch (error) {
        result.replaceChildren(el("p", "dry-run failed: " + error, "invalid"));
      }
    });
  }

  // -- rule list: drag and drop --------------------------------------------------------------
  const rules = document.getElementById("rules");
  if (rules && rules.getAttribute("data-draggable")) {
    let dragged = null;
    rules.addEventListener("dragstart", (event) => {
      dragged = event.target.closest("tr[data-rule-id]");
      if (dragged) {
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", dragged.getAttribute("data-rule-id"));
        dragged.classList.add("dragging");
      }
    });
    rules.addEventListener("dragover", (event) => {
      if (dragged && event.target.closest("tr[data-rule-id]")) event.preventDefault();
    });
    rules.addEventListener("drop", async (event) => {
      const target = event.target.closest("tr[data-rule-id]");
      if (!dragged || !target || target === dragged) return;
      event.preventDefault();
      target.parentNode.insertBefore(dragged, target);
      const order = Array.from(rules.querySelectorAll("tbody tr[data-rule-id]"), (row) => row.getAttribute("data-rule-id"));
      // The default rule always stays last.
      const last = rules.querySelector("tbody tr.default");
      if (last) {
        order.splice(order.indexOf(last.getAttribute("data-rule-id")), 1);
        order.push(last.getAttribute("data-rule-id"));
      }
      const response = await post(rules.getAttribute("data-order-url"),
        { base_version: parseInt(rules.getAttribute("data-base-version"), 10), order: order }, true);
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        window.alert(data.error || "The order could not be saved.");
      }
      window.location.reload();
    });
    rules.addEventListener("dragend", () => {
      if (dragged) dragged.classList.remove("dragging");
      dragged = null;
    });
  }
})();
