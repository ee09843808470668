// Passkey ceremonies for the login pages: registering a passkey or security
// key, and signing in with one.
//
// A page that uses it contains
//
//   <script type="application/json" id="webauthn-options">{"publicKey": …}</script>
//   <form id="webauthn-form" data-webauthn="register|login" method="post" action="…">
//     <input type="hidden" name="credential"> <button>…</button>
//   </form>
//   <p id="webauthn-error" hidden></p>
//
// and loads this file with <script src="…/webauthn.js" defer>. The options
// are the server's (go-webauthn's) JSON, with binary fields in base64url.
// When the form is submitted, the script runs navigator.credentials.create
// or .get with them, puts the browser's answer in the hidden input as JSON
// with base64url fields, and submits the form normally.
(() => {
  "use strict";

  const form = document.getElementById("webauthn-form");
  if (!form) {
    return;
  }
  const errorBox = document.getElementById("webauthn-error");
  const mode = form.dataset.webauthn;

  const showError = (message) => {
    if (errorBox) {
      errorBox.textContent = message;
      errorBox.hidden = false;
    } else {
      window.alert(message);
    }
  };

  const clearError = () => {
    if (errorBox) {
      errorBox.textContent = "";
      errorBox.hidden = true;
    }
  };

  const buttons = () =>
    Array.from(form.querySelectorAll("button, input[type=submit]"));

  if (
    typeof window.PublicKeyCredential === "undefined" ||
    !navigator.credentials
  ) {
    showError("This browser does not support passkeys");
    buttons().forEach((b) => {
      b.disabled = true;
    });
    return;
  }

  // base64url without padding, as go-webauthn writes and reads it.
  const toBuffer = (s) => {
    if (typeof s !== "string") {
      throw new TypeError("expected a base64url string");
    }
    const b64 = s.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) {
      bytes[i] = bin.charCodeAt(i);
    }
    return bytes.buffer;
  };

  const fromBuffer = (buf) => {
    const bytes =
      buf instanceof ArrayBuffer
        ? new Uint8Array(buf)
        : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    let bin = "";
    for (let i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  const decodeDescriptors = (list) =>
    Array.isArray(list) ? list.map((d) => ({ ...d, id: toBuffer(d.id) })) : list;

  const creationOptions = (pk) => ({
    ...pk,
    challenge: toBuffer(pk.challenge),
    user: { ...pk.user, id: toBuffer(pk.user.id) },
    excludeCredentials: decodeDescriptors(pk.excludeCredentials) || [],
  });

  const requestOptions = (pk) => ({
    ...pk,
    challenge: toBuffer(pk.challenge),
    allowCredentials: decodeDescriptors(pk.allowCredentials) || [],
  });

  // Extension results may hold binary values; JSON.stringify would turn
  // them into {}.
  const jsonSafe = (value) => {
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
      return fromBuffer(value);
    }
    if (Array.isArray(value)) {
      return value.map(jsonSafe);
    }
    if (value && typeof value === "object") {
      const out = {};
      for (const [k, v] of Object.entries(value)) {
        out[k] = jsonSafe(v);
      }
      return out;
    }
    return value;
  };

  const serialize = (cred) => {
    const r = cred.response;
    const response = { clientDataJSON: fromBuffer(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = fromBuffer(r.attestationObject);
      if (typeof r.getTransports === "function") {
        response.transports = r.getTransports();
      }
    }
    if (r.authenticatorData) {
      response.authenticatorData = fromBuffer(r.authenticatorData);
      response.signature = fromBuffer(r.signature);
      if (r.userHandle) {
        response.userHandle = fromBuffer(r.userHandle);
      }
    }
    const out = {
      id: cred.id,
      rawId: fromBuffer(cred.rawId),
      type: cred.type,
      response,
      clientExtensionResults:
        typeof cred.getClientExtensionResults === "function"
          ? jsonSafe(cred.getClientExtensionResults())
          : {},
    };
    if (cred.authenticatorAttachment) {
      out.authenticatorAttachment = cred.authenticatorAttachment;
    }
    return out;
  };

  const messageFor = (err) => {
    switch (err && err.name) {
      case "NotAllowedError":
      case "AbortError":
        return "The passkey request was cancelled or timed out. Please try again.";
      case "InvalidStateError":
        return mode === "register"
          ? "This passkey or security key is already registered."
          : "That passkey could not be used. Please try again.";
      case "SecurityError":
        return "Passkeys cannot be used on this address.";
      case "NotSupportedError":
        return "This passkey or security key is not supported.";
      default:
        return "Something went wrong with the passkey. Please try again.";
    }
  };

  let busy = false;

  // Coming back to the page from the history cache, the form is usable
  // again.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      busy = false;
      buttons().forEach((b) => {
        b.disabled = false;
      });
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) {
      return;
    }
    busy = true;
    clearError();
    const disabled = buttons();
    disabled.forEach((b) => {
      b.disabled = true;
    });
    try {
      const script = document.getElementById("webauthn-options");
      const options = JSON.parse(script ? script.textContent : "null");
      if (!options || !options.publicKey) {
        throw new Error("missing passkey options");
      }
      const request = {};
      if (options.mediation) {
        request.mediation = options.mediation;
      }
      let cred;
      if (mode === "register") {
        request.publicKey = creationOptions(options.publicKey);
        cred = await navigator.credentials.create(request);
      } else if (mode === "login") {
        request.publicKey = requestOptions(options.publicKey);
        cred = await navigator.credentials.get(request);
      } else {
        throw new Error(`unknown data-webauthn mode ${mode}`);
      }
      if (!cred) {
        throw new Error("no credential returned");
      }
      const input = form.elements.namedItem("credential");
      if (!input) {
        throw new Error("form has no credential input");
      }
      input.value = JSON.stringify(serialize(cred));
      // The prototype's submit, in case a control is named "submit"; it
      // does not fire this handler again.
      HTMLFormElement.prototype.submit.call(form);
    } catch (err) {
      showError(messageFor(err));
      disabled.forEach((b) => {
        b.disabled = false;
      });
      busy = false;
    }
  });
})();
