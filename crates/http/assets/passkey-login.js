// Passkey login on the provider's login page. The page works without this script (ID number
// and passcode); where the browser can use passkeys it shows the passkey button, asks the
// server for a one-time challenge bound to this authorization, lets the browser sign it, and
// posts the signed answer as an ordinary form so the server's redirect or next page follows.
(function () {
  "use strict";
  var box = document.getElementById("passkey");
  if (!box || !window.PublicKeyCredential || !navigator.credentials) return;
  var form = document.getElementById("passkey-form");
  var button = document.getElementById("passkey-button");
  var status = document.getElementById("passkey-status");
  box.hidden = false;

  function fromB64url(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function say(text) { status.textContent = text; }

  button.addEventListener("click", function () {
    button.disabled = true;
    say("Đang chờ khóa truy cập… · Waiting for the passkey…");
    fetch("/authorize/passkey/options", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ tx: form.elements.tx.value })
    })
      .then(function (r) {
        if (!r.ok) throw new Error("options " + r.status);
        return r.json();
      })
      .then(function (o) {
        var pk = o.publicKey;
        pk.challenge = fromB64url(pk.challenge);
        form.elements.challenge_id.value = o.challenge_id;
        return navigator.credentials.get({ publicKey: pk });
      })
      .then(function (cred) {
        var r = cred.response;
        form.elements.credential_id.value = toB64url(cred.rawId);
        form.elements.client_data_json.value = toB64url(r.clientDataJSON);
        form.elements.authenticator_data.value = toB64url(r.authenticatorData);
        form.elements.signature.value = toB64url(r.signature);
        form.submit();
      })
      .catch(function () {
        button.disabled = false;
        say("Không dùng được khóa truy cập; hãy đăng nhập bằng mật khẩu. · The passkey did not work; log in with your passcode.");
      });
  });
})();
