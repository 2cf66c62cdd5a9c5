# syntax=docker/dockerfile:1
# The Navigator operator image: a static (musl) binary on a distroless base that holds nothing else but CA
# certificates, running as the unprivileged user 65532. Build from the repository root:
#   docker build -t ghcr.io/navigator-operator/navigator:0.1.0 .
# (the Helm chart's default image). Builds for the architecture of the machine that builds it.

FROM docker.io/library/rust:1-bookworm AS build
RUN apt-get update \
	&& apt-get install -y --no-install-recommends musl-tools \
	&& rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
	--mount=type=cache,target=/src/target \
	target="$(uname -m)-unknown-linux-musl" \
	&& rustup target add "$target" \
	&& cargo build --release --locked --target "$target" --bin navigator \
	&& cp "target/$target/release/navigator" /navigator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /navigator /navigator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/navigator"]
CMD ["run"]
