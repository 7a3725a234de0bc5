// Admin page: refresh the endpoints table from /admin/endpoints.json every 5 s (text only, no HTML).
"use strict";
(() => {
  const table = document.getElementById("endpoints");
  if (!table) return;
  const body = document.getElementById("endpoints-body");
  const updated = document.getElementById("endpoints-updated");
  const url = `/admin/endpoints.json${table.dataset.all === "1" ? "?endpoints=all" : ""}`;
  const unit = (value, suffix) => (value === null || value === undefined ? "—" : `${value}${suffix}`);

  function cell(text) { return Object.assign(document.createElement("td"), { textContent: text }); }

  function row(e) {
    const tr = document.createElement("tr");
    tr.dataset.model = e.model;
    tr.dataset.provider = e.provider;
    const state = cell("");
    state.dataset.state = e.state;
    state.appendChild(Object.assign(document.createElement("span"), { className: `state state-${e.state}`, textContent: e.state }));
    tr.append(
      cell(e.model), cell(e.provider), state, cell(unit(e.uptime_pct, " %")), cell(unit(e.ttft_p50_ms, " ms")),
      cell(unit(e.ttft_p90_ms, " ms")), cell(unit(e.throughput_p50_tps, " tok/s")), cell(String(e.consecutive_failures)),
      cell(e.ejected_until || "—"),
    );
    return tr;
  }

  async function refresh() {
    if (document.hidden) return;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      body.replaceChildren(...data.endpoints.map(row));
      if (!data.endpoints.length) {
        const empty = cell("No routable endpoints.");
        empty.colSpan = 9;
        body.replaceChildren(Object.assign(document.createElement("tr"), {}));
        body.firstChild.appendChild(empty);
      }
      updated.textContent = `Live: updated ${new Date(data.at * 1000).toLocaleTimeString()}, refreshes every 5 s.`;
    } catch (error) {
      updated.textContent = `Live refresh failed (${error.message}); retrying.`;
    }
  }

  setInterval(refresh, 5000);
})();
