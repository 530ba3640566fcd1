# Sourced by the bench scripts: `start_weed DIR` runs SeaweedFS `weed mini` ($MVGEN_WEED) with its
# data in DIR/weed on free loopback ports, with the loopback and no-telemetry flags of
# shared/reference/scale-out.md (as tests/support/seaweed.rs), a bucket `bench`; it sets weed_pid,
# exports the AWS_* variables a client needs and returns once the S3 port answers.
start_weed() {
    local p=() _
    for _ in $(seq 10); do
        p+=("$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')")
    done
    mkdir -p "$1/weed"
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret "$MVGEN_WEED" mini -dir="$1/weed" \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -webdav=false -s3.port.iceberg=0 \
        -s3.port.lance=0 -admin.ui=false -master.port="${p[0]}" -master.port.grpc="${p[1]}" \
        -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" \
        -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" -admin.port="${p[8]}" -admin.port.grpc="${p[9]}" \
        -bucket=bench >"$1/weed.log" 2>&1 &
    weed_pid=$!
    export AWS_ENDPOINT_URL="http://127.0.0.1:${p[6]}" AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true \
        AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
    for _ in $(seq 120); do
        curl -s -o /dev/null "$AWS_ENDPOINT_URL/" && break
        sleep 0.5
    done
    sleep 2
}
