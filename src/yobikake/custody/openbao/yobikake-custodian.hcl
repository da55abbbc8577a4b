# The custodian's policy (AppRole `yobikake-custodian`), on the custody mount only.
# It makes each list's key pair, asks OpenBao to decrypt a wrapped batch key, and
# destroys a list's key when the list is shredded. Nothing here takes a private key out
# (export, backup), adds or trims key versions (rotate, trim), or touches another mount,
# a policy, an auth method or a token: a path not listed is refused.

# Create (transit creates with "update"), read (the public half), delete (shredding).
# Creating takes one parameter, the type, and only rsa-3072: a request asking for an
# exportable key, or one backed up in plaintext, is refused.
path "${custody_mount}/keys/+" {
  capabilities = ["create", "update", "read", "delete"]
  allowed_parameters = {
    "type" = ["rsa-3072"]
  }
}

# Shredding first allows the key's deletion; that is the only setting it may change.
path "${custody_mount}/keys/+/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "deletion_allowed" = [true]
  }
}

path "${custody_mount}/decrypt/+" {
  capabilities = ["update"]
}
