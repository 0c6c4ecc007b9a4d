// bridge queue UI: live counts on the queues page, a pass's progress on the run page.
// Everything from the server is set with textContent, never parsed as HTML.
(function () {
  "use strict";

  function poll(url, every, apply) {
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (!response.ok) { throw new Error(String(response.status)); }
          return response.json();
        })
        .then(function (data) { if (apply(data) !== false) { setTimeout(tick, every); } })
        .catch(function () { setTimeout(tick, every * 2); });
    }
    setTimeout(tick, every);
  }

  function cell(row, testid) {
    return row.querySelector('[data-testid="' + testid + '"]');
  }

  var COLUMNS = ["count-ready", "count-leased", "count-delayed", "count-held", "oldest-age",
    "rate-processed", "rate-failed"];

  function newRow(queue) {
    var tr = document.createElement("tr");
    var name = document.createElement("td");
    var link = document.createElement("a");
    name.className = "name";
    link.href = queue.url;
    link.textContent = queue.name;
    name.appendChild(link);
    tr.appendChild(name);
    COLUMNS.forEach(function (testid) {
      var td = document.createElement("td");
      td.className = "num";
      td.setAttribute("data-testid", testid);
      tr.appendChild(td);
    });
    var backend = document.createElement("td");
    backend.setAttribute("data-testid", "backend");
    backend.appendChild(document.createElement("code"));
    tr.appendChild(backend);
    tr.setAttribute("data-testid", "queue-row-" + queue.name);
    tr.setAttribute("data-key", queue.name + " " + queue.backend);
    return tr;
  }

  function fill(tr, queue) {
    COLUMNS.forEach(function (testid) {
      var td = cell(tr, testid);
      if (td && td.textContent !== queue.cells[testid]) { td.textContent = queue.cells[testid]; }
    });
    var backend = cell(tr, "backend");
    backend.firstChild.textContent = queue.backend;
    if (queue.error) { backend.title = queue.error; } else { backend.removeAttribute("title"); }
    tr.classList.toggle("down", Boolean(queue.error));
  }

  function updateQueues(table, data) {
    var body = table.tBodies[0];
    var rows = {};
    Array.prototype.forEach.call(body.querySelectorAll("tr[data-key]"), function (tr) {
      rows[tr.getAttribute("data-key")] = tr;
    });
    var keys = data.queues.map(function (q) { return q.name + " " + q.backend; });
    var same = keys.length === Object.keys(rows).length && keys.every(function (k) { return k in rows; });
    if (!same) {
      while (body.firstChild) { body.removeChild(body.firstChild); }
      data.queues.forEach(function (q, i) {
        rows[keys[i]] = rows[keys[i]] || newRow(q);
        body.appendChild(rows[keys[i]]);
      });
    }
    data.queues.forEach(function (q, i) { fill(rows[keys[i]], q); });
    var updated = document.querySelector('[data-testid="updated"]');
    if (updated) { updated.textContent = "updated " + new Date(data.time * 1000).toLocaleTimeString(); }
  }

  function setField(root, name, value) {
    var el = root.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = value === null || value === undefined ? "" : String(value); }
    return el;
  }

  function updateRun(root, run) {
    var bar = root.querySelector('[data-testid="progress"]');
    bar.max = run.max;
    bar.value = run.value;
    bar.textContent = run.value + " / " + run.max;
    root.querySelector('[data-testid="run-status"]').textContent = run.status;
    setField(root, "done", run.done);
    setField(root, "total", run.total);
    setField(root, "note", run.note).hidden = !run.note;
    setField(root, "error", run.error).hidden = !run.error;
    var summary = root.querySelector('[data-testid="run-summary"]');
    if (run.finished && run.summary) {
      ["processed", "failed", "held", "requeued", "delayed", "lost", "stopped_by"].forEach(function (key) {
        setField(summary, key, run.summary[key]);
      });
      setField(summary, "elapsed", Number(run.summary.elapsed).toFixed(2) + " s");
      summary.hidden = false;
    }
    return !run.finished;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector('table[data-testid="queues"][data-poll]');
    if (table) {
      poll(table.getAttribute("data-poll"), 2000, function (data) { updateQueues(table, data); });
    }
    var run = document.querySelector("[data-run-poll]");
    if (run) {
      poll(run.getAttribute("data-run-poll"), 500, function (data) { return updateRun(run, data); });
    }
  });
})();
