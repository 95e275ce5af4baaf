-- A token may check who sends deliveries to its callback URL: its callbackVerifier, as JSON
-- text ({"scheme", "secret", "header"?}), given at create. NULL takes any delivery.
ALTER TABLE waitpoints ADD COLUMN callback_verifier TEXT;
