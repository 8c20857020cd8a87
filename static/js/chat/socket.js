// The chat websocket: connecting, reconnecting with a doubling wait, the banner that says
// how the connection stands, and frames in and out. What the frames mean is left to the
// hooks that main.js passes to startSocket().

import { announce, config, el, sessionEnded, state } from "./page.js";

// Reconnect waits double from the first to the last (seconds).
var RECONNECT_FIRST_S = 1;
var RECONNECT_MAX_S = 30;
// The wait starts again from the first only once a connection has lasted this long, so a
// server that accepts and drops at once is not asked again every second (milliseconds).
var RECONNECT_STABLE_MS = 10000;
// The server closes the socket with this code once the session has ended.
var SESSION_ENDED = 4401;

var socket = null;
var reconnectAttempts = 0;
var reconnectTimer = 0;
var stableTimer = 0;
var reconnectAt = 0;
var countdownTimer = 0;

// onOpen(reconnected), onFrame(text), onLost() and onRetryScheduled().
var hooks = null;

// Sends one frame; returns false (sending nothing) when the socket is not open.
export function sendFrame(text) {
  if (!socket || !state.connected) {
    return false;
  }
  socket.send(text);
  return true;
}

function socketUrl() {
  var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return scheme + "//" + window.location.host + config.wsPath;
}

function connect() {
  window.clearTimeout(reconnectTimer);
  window.clearInterval(countdownTimer);
  reconnectTimer = 0;
  if (state.everConnected) {
    showBanner("Reconnecting\u2026", false);
  }
  var opened;
  try {
    opened = new WebSocket(socketUrl());
  } catch (e) {
    scheduleReconnect();
    return;
  }
  socket = opened;
  opened.addEventListener("open", function () {
    if (socket !== opened) {
      return;
    }
    var reconnected = state.everConnected;
    state.connected = true;
    state.everConnected = true;
    stableTimer = window.setTimeout(function () {
      reconnectAttempts = 0;
    }, RECONNECT_STABLE_MS);
    el.banner.hidden = true;
    hooks.onOpen(reconnected);
  });
  opened.addEventListener("message", function (event) {
    if (socket === opened && typeof event.data === "string") {
      hooks.onFrame(event.data);
    }
  });
  opened.addEventListener("close", function (event) {
    if (socket !== opened) {
      return;
    }
    socket = null;
    state.connected = false;
    window.clearTimeout(stableTimer);
    if (event.code === SESSION_ENDED) {
      sessionEnded();
      return;
    }
    // The banner's countdown changes every second, so it is not a live region: say it once.
    announce("Connection to the server lost. The page reconnects by itself.");
    hooks.onLost();
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  var delay = Math.min(RECONNECT_MAX_S, RECONNECT_FIRST_S * Math.pow(2, reconnectAttempts));
  reconnectAttempts += 1;
  reconnectAt = Date.now() + delay * 1000;
  reconnectTimer = window.setTimeout(connect, delay * 1000);
  hooks.onRetryScheduled();
  updateCountdown();
  window.clearInterval(countdownTimer);
  countdownTimer = window.setInterval(updateCountdown, 1000);
}

function updateCountdown() {
  var seconds = Math.max(0, Math.ceil((reconnectAt - Date.now()) / 1000));
  var what = state.everConnected ? "Connection to the server lost." : "Could not connect to the server.";
  showBanner(what + " Trying again in " + seconds + "\u00a0s.", true);
}

function showBanner(text, offerRetry) {
  if (el.bannerText.textContent !== text) {
    el.bannerText.textContent = text;
  }
  el.reconnectNow.hidden = !offerRetry;
  el.banner.hidden = false;
}

export function startSocket(socketHooks) {
  hooks = socketHooks;
  el.reconnectNow.addEventListener("click", function () {
    reconnectAttempts = 0;
    connect();
  });
  window.addEventListener("online", function () {
    if (!socket && state.everConnected) {
      connect();
    }
  });
  connect();
}
