// After django-otp-webauthn's script has registered a passkey, go to the list of passkeys
// (the server says where), which shows the new one.
document.addEventListener("otp_webauthn.register_complete", (event) => {
  const target = event.detail?.response?.redirect_url || "/accounts/passkeys/";
  window.location.assign(target);
});
