# The application's own key service (YOBIKAKE_KEY_SERVICE=openbao, mount
# OPENBAO_TRANSIT_MOUNT), a mount apart from the custody mount: the keys that wrap each
# insurer's blind-index key, the audit and authorization MAC keys and uploads in
# progress, and the key that signs audit checkpoints. These are the application
# domain's keys; none of them opens a stored field. No export or backup, here either.

path "${app_mount}/keys/+" {
  capabilities = ["create", "update", "read", "delete"]
  allowed_parameters = {
    "type" = ["aes256-gcm96", "ed25519"]
  }
}

path "${app_mount}/keys/+/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "deletion_allowed" = [true]
  }
}

path "${app_mount}/keys/+/rotate" {
  capabilities = ["update"]
}

path "${app_mount}/encrypt/+" {
  capabilities = ["update"]
}

path "${app_mount}/decrypt/+" {
  capabilities = ["update"]
}

path "${app_mount}/rewrap/+" {
  capabilities = ["update"]
}

path "${app_mount}/sign/+" {
  capabilities = ["update"]
}
