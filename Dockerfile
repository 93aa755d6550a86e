# bridgewatch container image: the BPF object and the TypeScript are built in the builder
# stage; the runtime stage has Node, libbpf, libpcap and iproute2 and nothing else.
#
#   docker build -t bridgewatch:0.1.0 .
#   docker run -d --name bridgewatch --restart unless-stopped \
#     --network host \
#     --cap-drop ALL \
#     --cap-add BPF --cap-add NET_ADMIN --cap-add NET_RAW --cap-add PERFMON --cap-add SYS_RESOURCE \
#     -v /sys/fs/bpf:/sys/fs/bpf \
#     --read-only --tmpfs /tmp -v /run/bridgewatch:/run/bridgewatch \
#     -v /etc/bridgewatch/token:/run/secrets/bridgewatch-token:ro \
#     bridgewatch:0.1.0 run --api-token-file /run/secrets/bridgewatch-token
#
# --network host: bridgewatch watches the host's bridges and taps and sends RARP on them; in
#   its own network namespace it would see only its own veth.
# Capabilities: BPF (load programs and maps), PERFMON (CO-RE reads of kernel structures),
#   NET_ADMIN (TC hooks, rtnetlink), NET_RAW (packet socket for RARP), SYS_RESOURCE (memlock
#   limit on kernels before 5.11). No --privileged. Docker's default seccomp profile allows
#   bpf(2) with CAP_BPF since Docker 20.10.x; on older engines add --security-opt seccomp=unconfined.
# /sys/fs/bpf: bridgewatch pins nothing (its tcx links die with it, which is the cleanup we
#   want); mounted because libbpf and bpftool expect the host's bpffs there. The kernel's BTF
#   (/sys/kernel/btf/vmlinux, for CO-RE) is in the container's own read-only /sys: no mount. Do
#   not add -v /sys/kernel/btf:...: on a kernel without BTF the path is missing, Docker tries to
#   create it, sysfs refuses, and the container never starts, where bridgewatch would have fallen
#   back to libpcap. /run/bridgewatch: a host directory, so the clsact hooks a crashed run
#   created (tc mode, kernels before 6.6) are still known as ours after a restart.
# The token (only for POST /api/v1/announce) comes from a file: a flag would show in ps.
# The HTTP port listens on every host address: see the README, "What the HTTP port exposes".
#
# Why root inside: the capabilities above are what protects the host, and a container's root
# has only those. A non-root user would need them as file capabilities on the node binary
# (setcap on /usr/local/bin/node), which then applies to every Node program in the image and
# breaks when the runtime or a volume strips extended attributes. With --cap-drop ALL and the
# list above, root here cannot read other users' files (no DAC_OVERRIDE), load modules or mount.

# Node.js 24 (LTS); bridgewatch needs 20 or newer
FROM node:24-bookworm AS builder
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev libpcap-dev make g++ python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/bridgewatch
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY bpf/ bpf/
COPY src/ src/
COPY bin/ bin/
RUN bash bpf/build.sh \
 && npx tsc -p tsconfig.json \
 && npm prune --omit=dev

FROM node:24-bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="bridgewatch" \
      org.opencontainers.image.description="Detects (and heals) VM taps that join a Linux bridge after the guest's post-migration announcements" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/node:24-bookworm-slim"
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 libpcap0.8 iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/bridgewatch
COPY --from=builder /opt/bridgewatch/package.json ./
COPY --from=builder /opt/bridgewatch/node_modules/ node_modules/
COPY --from=builder /opt/bridgewatch/dist/ dist/
COPY --from=builder /opt/bridgewatch/bin/ bin/
EXPOSE 9725
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:9725/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
ENTRYPOINT ["node", "/opt/bridgewatch/bin/bridgewatch.js"]
CMD ["run"]
