// The chat page's entry point (loaded as a module by templates/chat/index.html after the
// vendored marked, DOMPurify and highlight.js): it wires the page's parts together and
// starts them: the list of conversations, the one in the address, the model's state and
// the websocket.

import { announce, app } from "./page.js";
import { initScrolling } from "./messages.js";
import { initComposer, resizeInput, updateComposer } from "./composer.js";
import { initCopy } from "./copy.js";
import { initDocuments } from "./documents.js";
import { initVersions } from "./versions.js";
import { initSettings } from "./settings.js";
import { initSidebar } from "./sidebar.js";
import {
  initConversations,
  openFromHash,
  refreshConversations,
  reloadCurrent,
} from "./conversations.js";
import { initSearch } from "./search.js";
import { initModels } from "./models.js";
import { initStatus, refreshStatus } from "./status.js";
import { connectionLost, handleFrame } from "./stream.js";
import { startSocket } from "./socket.js";

function start() {
  initComposer();
  initConversations();
  initSidebar();
  initScrolling();
  initCopy();
  initVersions();
  initSettings();
  initSearch();
  initStatus();
  initDocuments();
  initModels();

  resizeInput();
  updateComposer();
  refreshStatus();
  refreshConversations();
  openFromHash(true);
  startSocket({
    onOpen: function (reconnected) {
      updateComposer();
      if (reconnected) {
        announce("Connection restored.");
        refreshStatus();
        refreshConversations();
        reloadCurrent();
      }
    },
    onFrame: handleFrame,
    onLost: connectionLost,
    // A session that ended may refuse the socket before it opens (no 4401 then); the API
    // notices it, and reloads the page to reach the sign-in page.
    onRetryScheduled: refreshStatus,
  });
}

if (app) {
  start();
}
