// The live dashboard: one websocket (history, deliveries, stats), charts drawn on <canvas>, no library.
// Every string that came from an agent (titles, types, errors, ids) is set with textContent, never as markup.
(function () {
  "use strict";

  const root = document.getElementById("dashboard");
  const bucketSeconds = Number(root.dataset.bucketSeconds) || 10;
  const windowSeconds = Number(root.dataset.windowSeconds) || 3600;
  const MAX_ROWS = 200;
  const buckets = new Map(); // bucket start (epoch s) -> figures
  const feed = document.getElementById("feed");
  const connection = document.getElementById("connection");
  let retryDelay = 500;

  // --- websocket -------------------------------------------------------------------------------------------
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + root.dataset.websocket);
    let opened = false;
    socket.onopen = function () {
      opened = true;
      retryDelay = 500;
      setConnection("live", "live");
    };
    socket.onmessage = function (event) {
      const message = JSON.parse(event.data);
      const handler = handlers[message.type];
      if (handler) handler(message);
    };
    socket.onclose = function () {
      // A refused handshake (logged out) and an unreachable server look alike to a browser: retry, slower.
      setConnection(opened ? "disconnected, retrying…" : "cannot connect (logged out?), retrying…", "down");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    };
  }

  function setConnection(text, state) {
    connection.textContent = text;
    connection.className = "badge " + state;
    root.dataset.connection = state;
  }

  const handlers = {
    history: function (message) {
      // Newest first from the server: add oldest first so the newest ends on top.
      message.items.slice().reverse().forEach(function (item) { addRow(item, false); });
    },
    deliveries: function (message) {
      message.items.forEach(function (item) { addRow(item, true); });
    },
    tuner: function (message) {
      const list = document.getElementById("tuner");
      message.changes.forEach(function (change) {
        const li = document.createElement("li");
        li.textContent = new Date().toLocaleTimeString() + " · version " + message.version + " · " + change.knob +
          ": " + change.old + " → " + change.new + " (" + change.reason + ")";
        list.insertBefore(li, list.firstChild);
      });
      while (list.children.length > 20) list.removeChild(list.lastChild);
      document.getElementById("tuner-box").hidden = false;
    },
    stats: function (message) {
      message.buckets.forEach(function (b) { buckets.set(b.t, b); });
      const oldest = Date.now() / 1000 - windowSeconds;
      for (const t of buckets.keys()) if (t < oldest - bucketSeconds) buckets.delete(t);
      showSummary(message.summary);
      drawAll();
    },
  };

  // --- the feed --------------------------------------------------------------------------------------------
  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function addRow(item, fresh) {
    const row = document.createElement("tr");
    if (fresh) row.className = "fresh";
    row.dataset.eventId = String(item.event_id || "");
    const at = item.at ? new Date(item.at * 1000) : new Date();
    cell(row, at.toLocaleTimeString(), "time");
    cell(row, item.status, "status status-" + String(item.status).replace(/[^a-z]/g, ""));
    cell(row, item.type, "type");
    cell(row, item.title, "title");
    cell(row, item.chat_id, "chat-id");
    cell(row, item.latency_ms == null ? "" : Number(item.latency_ms).toFixed(1) + " ms", "latency");
    cell(row, item.error, "error");
    feed.insertBefore(row, feed.firstChild);
    while (feed.rows.length > MAX_ROWS) feed.deleteRow(feed.rows.length - 1);
    document.getElementById("feed-empty").hidden = true;
  }

  // --- tiles -----------------------------------------------------------------------------------------------
  function setTile(id, text) {
    document.getElementById(id).textContent = text;
  }

  function fmt(value, unit, digits) {
    if (value == null) return "–";
    return Number(value).toFixed(digits == null ? 0 : digits) + (unit || "");
  }

  function showSummary(s) {
    if (!s) return;
    setTile("tile-sent", fmt(s.sent));
    setTile("tile-errors", fmt(s.error_rate, " %", 1) + " (" + fmt(s.failed) + ")");
    setTile("tile-latency", fmt(s.p50, "", 1) + " / " + fmt(s.p99, " ms", 1));
    setTile("tile-queue", fmt(s.queue_depth));
    setTile("tile-cache", fmt(s.cache_hit_rate, " %", 1));
    setTile("tile-memory", fmt(s.memory_mb, " MB", 1));
    setTile("tile-workers", fmt(s.workers));
  }

  // --- charts ----------------------------------------------------------------------------------------------
  const CHARTS = [
    { id: "chart-throughput", bars: true, series: [{ key: "sent", color: "#2b7bd8" }] },
    { id: "chart-latency", series: [{ key: "p50", color: "#1e9e5a", label: "p50" }, { key: "p99", color: "#d2433f", label: "p99" }] },
    { id: "chart-queue", series: [{ key: "queue_depth", color: "#7a5bd6" }] },
    { id: "chart-errors", series: [{ key: "error_rate", color: "#d2433f" }], max: 100 },
    { id: "chart-cache", series: [{ key: "cache_hit_rate", color: "#1e9e5a" }], max: 100 },
    { id: "chart-memory", series: [{ key: "memory_mb", color: "#c98a12" }] },
  ];

  function drawAll() {
    const now = Date.now() / 1000;
    const end = Math.floor(now / bucketSeconds) * bucketSeconds;
    const start = end - windowSeconds + bucketSeconds;
    const rows = [];
    for (let t = start; t <= end; t += bucketSeconds) rows.push(buckets.get(t) || { t: t });
    CHARTS.forEach(function (chart) { draw(chart, rows, start, end); });
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    const steps = [1, 2, 5, 10];
    for (const step of steps) if (value <= step * power) return step * power;
    return 10 * power;
  }

  function draw(chart, rows, start, end) {
    const canvas = document.getElementById(chart.id);
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (canvas.width !== width * ratio || canvas.height !== height * ratio) {
      canvas.width = width * ratio;
      canvas.height = height * ratio;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const left = 44, right = 8, top = 8, bottom = 18;
    const plotW = width - left - right, plotH = height - top - bottom;
    let peak = 0;
    rows.forEach(function (row) {
      chart.series.forEach(function (s) { if (row[s.key] != null) peak = Math.max(peak, row[s.key]); });
    });
    const max = chart.max || niceMax(peak);
    const x = function (t) { return left + (plotW * (t - start)) / Math.max(1, end - start); };
    const y = function (v) { return top + plotH - (plotH * v) / max; };

    // grid and labels
    ctx.strokeStyle = "#e2e6ee";
    ctx.fillStyle = "#6b7385";
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    [0, 0.5, 1].forEach(function (f) {
      const v = max * f;
      ctx.beginPath();
      ctx.moveTo(left, y(v) + 0.5);
      ctx.lineTo(width - right, y(v) + 0.5);
      ctx.stroke();
      ctx.textAlign = "right";
      ctx.fillText(v >= 100 ? v.toFixed(0) : +v.toFixed(2) + "", left - 4, y(v) + 4);
    });
    ctx.textAlign = "left";
    ctx.fillText("−60 min", left, height - 4);
    ctx.textAlign = "right";
    ctx.fillText("now", width - right, height - 4);

    const slot = plotW / Math.max(1, rows.length);
    chart.series.forEach(function (s, index) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      if (chart.bars) {
        rows.forEach(function (row) {
          const v = row[s.key];
          if (!v) return;
          ctx.fillRect(x(row.t), y(v), Math.max(1, slot - 1), top + plotH - y(v));
        });
      } else {
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        const points = [];
        rows.forEach(function (row) {
          const v = row[s.key];
          if (v == null) return; // no sample: bridge the gap rather than draw a false zero
          const px = x(row.t) + slot / 2, py = y(v);
          if (points.length) ctx.lineTo(px, py); else ctx.moveTo(px, py);
          points.push([px, py]);
        });
        ctx.stroke();
        // A line needs two points: mark the newest, and every point while there are few.
        points.slice(points.length > 20 ? -1 : 0).forEach(function (point) {
          ctx.beginPath();
          ctx.arc(point[0], point[1], 2.5, 0, 2 * Math.PI);
          ctx.fill();
        });
      }
      if (s.label) {
        ctx.textAlign = "left";
        ctx.fillText(s.label, left + 6 + index * 36, top + 10);
      }
    });
    const latest = rows.slice().reverse().find(function (row) {
      return chart.series.some(function (s) { return row[s.key] != null; });
    });
    canvas.dataset.latest = latest ? JSON.stringify(chart.series.map(function (s) { return latest[s.key]; })) : "";
  }

  window.addEventListener("resize", drawAll);
  setInterval(drawAll, bucketSeconds * 1000); // the window slides even when nothing happens
  drawAll();
  connect();
})();
