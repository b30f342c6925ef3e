#!/usr/bin/env bash
# `make vendor`: refresh the console's design system and htmx from the npm registry at the
# pinned versions below, compiling GOV.UK Frontend's Sass without the GDS Transport font
# (unbranded: the font and the crown are GOV.UK's own), into services/console/static/vendor/.
set -euo pipefail
GOVUK_FRONTEND=6.3.0   # matches govuk-frontend-jinja 4.1.0 (pyproject.toml)
HTMX=2.0.11
SASS=1.108.2
cd "$(dirname "$0")/.."
out=services/console/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null &&
    npm install --silent --no-audit --no-fund --ignore-scripts \
        "govuk-frontend@$GOVUK_FRONTEND" "htmx.org@$HTMX" "sass@$SASS")
cat > "$work/console.scss" <<SCSS
@use "node_modules/govuk-frontend/dist/govuk" with (
  \$govuk-font-family: (arial, sans-serif),
  \$govuk-assets-path: "/static/vendor/"
);
SCSS
rm -rf "$out"
mkdir -p "$out"
(cd "$work" && npx --no-install sass --no-source-map --style=compressed --quiet-deps \
    --load-path=. console.scss console.css)
cp "$work/console.css" "$out/govuk-frontend.min.css"
cp "$work/node_modules/govuk-frontend/dist/govuk/govuk-frontend.min.js" "$out/"
cp "$work/node_modules/htmx.org/dist/htmx.min.js" "$out/"
node -e "const p=require(process.argv[1]); console.log(p.name + ' ' + p.version + ': ' + p.license + ' licence, ' + p.homepage)" "$work/node_modules/govuk-frontend/package.json" > "$out/govuk-frontend.LICENSE.txt"
cp "$work/node_modules/htmx.org/LICENSE" "$out/htmx.LICENSE.txt"
printf 'govuk-frontend %s\nhtmx.org %s\nsass %s\n' "$GOVUK_FRONTEND" "$HTMX" "$SASS" > "$out/VERSIONS"
if grep -q "GDS Transport" "$out/govuk-frontend.min.css"; then
    echo "the compiled CSS still names GDS Transport" >&2
    exit 1
fi
echo "vendored into $out: $(tr '\n' ' ' < "$out/VERSIONS")"
