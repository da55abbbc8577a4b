# The application's policy: on the custody mount it reads each list's key (its public
# half, to seal to) and nothing else. Every decrypt, export, backup, key change or
# deletion there is refused, as is everything under sys/, every policy, the custodian's
# AppRole, and making tokens.
path "${custody_mount}/keys/+" {
  capabilities = ["read"]
}

# Its own token, which is periodic: look it up and renew it.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
