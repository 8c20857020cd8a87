// Safe Markdown rendering of model output, which is untrusted. The vendored marked (loaded
// as a classic script before this module) turns it into HTML with raw HTML escaped and
// images shown as links; DOMPurify then sanitises it before it touches the page; vendored
// highlight.js colours code blocks that name their language. Without those libraries the
// text is shown as plain text.

import { copyButton, escapeHtml, make } from "./util.js";

var canRenderMarkdown = Boolean(window.marked && window.DOMPurify && window.DOMPurify.isSupported);
var hljs = window.hljs || null;

var ALLOWED_TAGS = [
  "a", "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
  "code", "pre", "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th",
  "td", "span", "sup", "sub", "kbd",
];
var PURIFY_CONFIG = {
  ALLOWED_TAGS: ALLOWED_TAGS,
  ALLOWED_ATTR: ["href", "title", "class", "align", "start"],
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:https?|mailto):/i,
  RETURN_DOM_FRAGMENT: true,
};
var SAFE_PROTOCOLS = ["http:", "https:", "mailto:"];
// Only the classes our own renderer writes: highlight.js tokens and the code language.
var SAFE_CLASS_RE = /^(?:hljs(?:-[\w-]+)?|language-[\w+#.-]+|[\w-]+_)$/;

function safeHref(href) {
  try {
    var url = new URL(href, window.location.href);
    return SAFE_PROTOCOLS.indexOf(url.protocol) !== -1 ? url.href : null;
  } catch (e) {
    return null;
  }
}

var markdown = null;
if (canRenderMarkdown) {
  window.DOMPurify.addHook("uponSanitizeAttribute", function (node, data) {
    if (data.attrName === "class") {
      data.attrValue = data.attrValue.split(/\s+/).filter(function (name) {
        return SAFE_CLASS_RE.test(name);
      }).join(" ");
    }
  });
  window.DOMPurify.addHook("afterSanitizeAttributes", function (node) {
    if (node.nodeName === "A") {
      var href = node.hasAttribute("href") ? safeHref(node.getAttribute("href")) : null;
      if (href === null) {
        node.removeAttribute("href");
        return;
      }
      node.setAttribute("href", href);
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });

  markdown = new window.marked.Marked({ gfm: true, breaks: false, async: false });
  markdown.use({
    renderer: {
      // Raw HTML in model output is shown as the text it is, never parsed as HTML.
      html: function (token) {
        var text = escapeHtml(token.text);
        return token.block ? "<p>" + text + "</p>\n" : text;
      },
      // No image is ever loaded: it becomes a link the user may choose to open.
      image: function (token) {
        var label = "Image: " + (token.text || token.href);
        return '<a href="' + escapeHtml(token.href) + '">' + escapeHtml(label) + "</a>";
      },
      checkbox: function (token) {
        return token.checked ? "\u2611 " : "\u2610 ";
      },
      // Only blocks that name their language are highlighted: guessing is often wrong, and
      // too slow to repeat on every render of a streaming answer.
      code: function (token) {
        var language = (token.lang || "").trim().split(/\s+/)[0].toLowerCase();
        var text = token.text || "";
        var html = hljs && language && hljs.getLanguage(language)
          ? hljs.highlight(text, { language: language, ignoreIllegals: true }).value
          : escapeHtml(text);
        var className = "hljs" + (language ? " language-" + escapeHtml(language) : "");
        return '<pre><code class="' + className + '">' + html + "</code></pre>\n";
      },
    },
  });
}

function decorateCodeBlocks(root) {
  root.querySelectorAll("pre").forEach(function (pre) {
    var code = pre.querySelector("code");
    var match = code ? /(?:^|\s)language-([\w+#.-]+)/.exec(code.className) : null;
    var block = make("div", "code-block");
    var head = make("div", "code-block-head");
    head.appendChild(make("span", "code-language", match ? match[1] : "text"));
    head.appendChild(copyButton("copy-code", "Copy code"));
    pre.parentNode.insertBefore(block, pre);
    block.appendChild(head);
    block.appendChild(pre);
  });
}

export function renderMarkdownInto(body, text) {
  if (!markdown) {
    body.classList.add("plain-text");
    body.textContent = text;
    return;
  }
  var fragment = window.DOMPurify.sanitize(markdown.parse(text), PURIFY_CONFIG);
  decorateCodeBlocks(fragment);
  body.replaceChildren(fragment);
}

