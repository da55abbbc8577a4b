# OpenBao on the custody host: persistent raft storage, TLS only, a file audit device.
# Rendered by yobikake.custody.openbao.server_config (the test of the production profile
# starts a server from it); by hand, replace each placeholder (dollar sign, braces).

storage "raft" {
  path    = "${data_dir}"
  node_id = "${node_id}"
  # 1 is the production setting (elections within seconds); the default, 5, is for
  # slow development machines.
  performance_multiplier = 1
}

listener "tcp" {
  address         = "${address}"
  cluster_address = "${cluster_address}"
  tls_cert_file   = "${tls_cert_file}"
  tls_key_file    = "${tls_key_file}"
  tls_min_version = "tls12"
}

api_addr     = "https://${address}"
cluster_addr = "https://${cluster_address}"
ui           = false

# Every request, refused ones included (paths in the clear, secrets as HMACs).
audit "file" "custody" {
  options {
    file_path = "${audit_log}"
  }
}
