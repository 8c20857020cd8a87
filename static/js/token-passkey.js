// "Make the token with a passkey" on the token page: asks the server for a challenge made for
// this one token, has the browser sign it with one of the person's passkeys, and sends the
// signed answer with the form, which the server checks once (api.views_tokens).

var form = document.getElementById("new-token");
var button = document.getElementById("token-passkey");
var status = document.getElementById("token-passkey-status");

function toBytes(base64url) {
  var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  var text = atob(base64 + "===".slice((base64.length + 3) % 4));
  return Uint8Array.from(text, function (c) { return c.charCodeAt(0); });
}

function toBase64url(buffer) {
  var text = String.fromCharCode.apply(null, new Uint8Array(buffer));
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function requestOptions(options) {
  return {
    challenge: toBytes(options.challenge),
    timeout: options.timeout,
    rpId: options.rpId,
    userVerification: options.userVerification,
    allowCredentials: (options.allowCredentials || []).map(function (allowed) {
      return { type: allowed.type, id: toBytes(allowed.id), transports: allowed.transports };
    }),
  };
}

// The credential as py_webauthn reads it (parse_authentication_credential_json).
function asJson(credential) {
  var response = credential.response;
  return JSON.stringify({
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: {
      clientDataJSON: toBase64url(response.clientDataJSON),
      authenticatorData: toBase64url(response.authenticatorData),
      signature: toBase64url(response.signature),
      userHandle: response.userHandle ? toBase64url(response.userHandle) : undefined,
    },
  });
}

function say(text) {
  status.textContent = text;
}

function challenge() {
  return fetch(form.dataset.passkeyChallenge, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRFToken": form.elements.csrfmiddlewaretoken.value },
  }).then(function (response) {
    return response.json().then(function (body) {
      if (!response.ok) {
        throw new Error(body.detail || "The passkey could not be used. Reload the page and try again.");
      }
      return body;
    });
  });
}

function usePasskey() {
  button.disabled = true;
  say("Use your passkey now.");
  challenge().then(function (options) {
    return navigator.credentials.get({ publicKey: requestOptions(options) });
  }).then(function (credential) {
    say("Making the token\u2026");
    form.elements.passkey.value = asJson(credential);
    if (form.elements.code) {
      form.elements.code.value = "";
    }
    form.submit();
  }).catch(function (error) {
    button.disabled = false;
    say(error && error.name === "NotAllowedError"
      ? "The passkey was not used. Try again, or type your authenticator app's code."
      : (error && error.message) || "The passkey could not be used.");
  });
}

if (form && button && window.PublicKeyCredential && navigator.credentials) {
  button.hidden = false;
  button.addEventListener("click", usePasskey);
}
