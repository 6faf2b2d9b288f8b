from autocomplete.entry import main

raise SystemExit(main())
