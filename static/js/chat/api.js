// The page's JSON HTTP API client: same-origin fetches with the CSRF token, errors turned
// into ApiError with a sentence to show, and an ended session sent to the sign-in page.

import { config, csrfToken, sessionEnded } from "./page.js";

// ``fields``: a sentence for each field the server refused (settings and presets).
export function ApiError(code, detail, status, fields) {
  this.code = code;
  this.detail = detail;
  this.status = status || 0;
  this.fields = fields && typeof fields === "object" ? fields : null;
}

export function api(path, body) {
  var init = {
    method: body === undefined ? "GET" : "POST",
    credentials: "same-origin",
    cache: "no-store",
    headers: { Accept: "application/json" },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRFToken"] = csrfToken;
    init.body = JSON.stringify(body);
  }
  return window.fetch(config.apiUrl + path, init).catch(function () {
    throw new ApiError("network", "The server could not be reached. Check your connection and try again.");
  }).then(function (response) {
    var type = response.headers.get("Content-Type") || "";
    var isJson = type.indexOf("application/json") === 0;
    // A session that ended answers with a redirect to the sign-in page (or a 401).
    if (response.status === 401 || (response.redirected && !isJson)) {
      sessionEnded();
      throw new ApiError("session_ended", "Your session has ended. Sign in again.", response.status);
    }
    var parsed = isJson ? response.json().catch(function () { return null; }) : Promise.resolve(null);
    return parsed.then(function (data) {
      if (!response.ok || data === null) {
        var error = data && data.error ? data.error : {};
        throw new ApiError(
          error.code || "http_" + response.status,
          error.detail || "Something went wrong on the server (HTTP " + response.status
            + "). Try again in a moment.",
          response.status,
          error.fields
        );
      }
      return data;
    });
  });
}

export function conversationPath(id) {
  return "conversations/" + encodeURIComponent(id);
}
