// Where a conversation was started: the page, or an API call the site kept (the
// conversation's "origin" and "api_token" from the chat API, the list and search).

import { make } from "./util.js";

// The token of a conversation an API call started ({name, prefix}), or null for the page's.
export function apiTokenOf(c) {
  if (c.origin !== "api" || !c.api_token || typeof c.api_token !== "object") {
    return null;
  }
  return { name: String(c.api_token.name || ""), prefix: String(c.api_token.prefix || "") };
}

// The small "API" mark of a conversation an API call started, with its token's name (text
// only: the name is the user's own and never markup).
export function apiBadge(token) {
  var badge = make("span", "origin-badge");
  badge.appendChild(make("span", "origin-badge-kind", "API"));
  badge.appendChild(make("span", "visually-hidden", ", started with the token "));
  badge.appendChild(make("span", "origin-badge-token", token.name));
  badge.title = originSentence(token);
  return badge;
}

export function originSentence(token) {
  return "Started by an API call with the token \u201c" + token.name + "\u201d (" + token.prefix + "\u2026)";
}
