// The chat's live dashboard: polls /stats.json and draws three SVG charts.
// Plain JavaScript and SVG, nothing from another origin.
"use strict";

const POLL_MS = 1000;
const KEEP_MS = 5 * 60 * 1000;
const WIDTH = 600;
const HEIGHT = 160;
const SVG = "http://www.w3.org/2000/svg";

const series = { connections: [], rate: [], rtt: [] };
let previous = null;

function point(name, time, value) {
  const points = series[name];
  points.push({ time, value });
  while (points.length && points[0].time < time - KEEP_MS) points.shift();
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function format(value) {
  if (value === null) return "–";
  if (Number.isInteger(value)) return value.toString();
  if (value >= 100) return Math.round(value).toString();
  return value.toFixed(value >= 10 ? 1 : 2);
}

function element(name, attributes) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function draw(name, now) {
  const section = document.getElementById(name);
  const svg = section.querySelector("svg");
  const points = series[name].filter((p) => p.value !== null);
  const top = niceMax(Math.max(0, ...points.map((p) => p.value)));
  svg.replaceChildren();
  for (const fraction of [0, 0.5, 1]) {
    const y = HEIGHT - fraction * (HEIGHT - 14);
    svg.append(element("line", { x1: 0, x2: WIDTH, y1: y, y2: y, class: "grid" }));
    const label = element("text", { x: 4, y: y - 3, class: "axis" });
    label.textContent = format(fraction * top) + section.dataset.unit;
    svg.append(label);
  }
  if (points.length) {
    const x = (time) => WIDTH - ((now - time) / KEEP_MS) * WIDTH;
    const y = (value) => HEIGHT - (value / top) * (HEIGHT - 14);
    const path = points
      .map((p, i) => `${i ? "L" : "M"}${x(p.time).toFixed(1)},${y(p.value).toFixed(1)}`)
      .join(" ");
    svg.append(element("path", { d: path, class: "line" }));
  }
  const last = series[name].length ? series[name][series[name].length - 1].value : null;
  section.dataset.last = last === null ? "" : String(last);
  section.dataset.points = String(points.length);
  section.querySelector(".now").textContent = last === null ? "" : format(last) + section.dataset.unit;
}

async function poll() {
  const state = document.getElementById("poll-state");
  try {
    const response = await fetch("/stats.json", { cache: "no-store" });
    if (!response.ok) throw new Error(response.status);
    const stats = await response.json();
    const now = stats.time * 1000;
    point("connections", now, stats.connections_open);
    if (previous !== null && now > previous.time * 1000) {
      const seconds = stats.time - previous.time;
      const messages =
        stats.messages_received + stats.messages_sent -
        previous.messages_received - previous.messages_sent;
      point("rate", now, messages / seconds);
      const pongs = stats.ping_rtt_count - previous.ping_rtt_count;
      point("rtt", now, pongs > 0 ? ((stats.ping_rtt_sum - previous.ping_rtt_sum) / pongs) * 1000 : null);
    }
    previous = stats;
    for (const name of Object.keys(series)) draw(name, now);
    state.dataset.state = "open";
    state.textContent = "live";
  } catch (error) {
    state.dataset.state = "closed";
    state.textContent = "no data";
  }
}

poll();
setInterval(poll, POLL_MS);
