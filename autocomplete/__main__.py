from autocomplete.cli import main

raise SystemExit(main())
